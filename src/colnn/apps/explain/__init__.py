"""``colnn explain``: the tutorial's im2col walk, step by step, as text and a figure.

The walk is data (:mod:`.walk`: a :class:`Walk` of :class:`Step` records,
which :mod:`.records` defines below everything else), built by
:func:`pool_walk` and :func:`conv_walk` from shared steps (:mod:`.steps`);
:mod:`.command` renders it as text and runs the command, :mod:`.plot` draws it
(matplotlib, imported only for a figure), :mod:`.html` writes it as an
interactive page (``--html``, and :meth:`Walk._repr_html_` in Jupyter).
"""

from .command import explain, register, render_text, run_explain
from .conv_walk import conv_walk
from .pool_walk import pool_walk
from .walk import Step, Walk, tutorial_input

__all__ = ["explain", "Step", "Walk", "pool_walk", "conv_walk", "tutorial_input", "render_text", "run_explain",
           "register"]
