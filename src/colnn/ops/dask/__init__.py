"""The Dask path: every op with a lazy form, on Dask arrays, chunk by chunk, equal to the NumPy path.

A public op sends a ``dask.array.Array`` here itself, after checking its
arguments (through the family's arguments object) and the array's shape and
dtype (on a stand-in, :func:`colnn.core.checks.stand_in`), so NumPy and Dask
answer a call with the same result or the same error. Each function receives
the NumPy computation it runs per chunk from its caller, so this package
imports only the families' ``_base`` modules: no import circle.

- :mod:`.graph`: windows with halos (:func:`~.graph.map_windows`), batches
  through a model or layer (:func:`~.graph.map_batches`), threads per task;
- :mod:`.pooling`, :mod:`.conv`, :mod:`.unfold`: the lazy forms of the ops.

Importing this package imports Dask; ``import colnn`` never does.
"""

from .graph import map_batches, map_windows, set_threads_per_task

__all__ = ["map_batches", "map_windows", "set_threads_per_task"]
