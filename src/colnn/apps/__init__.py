"""The applications behind the ``colnn`` command, one module each.

:mod:`.cli` dispatches to :mod:`.train` (``colnn train``/``evaluate``, with the
data sets of :mod:`.data`), :mod:`.explain` (``colnn explain``) and
:mod:`.bench` (``colnn bench``). They use :mod:`colnn.nn` and :mod:`colnn.ops`
and import their optional dependencies (scikit-learn, tqdm, matplotlib, torch)
only when a command runs. ``import colnn`` does not import this package.
"""
