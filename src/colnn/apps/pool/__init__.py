"""``colnn pool``: an OME-Zarr multiscale pyramid of an image larger than memory, with Dask.

``colnn pool INPUT OUTPUT --kernel K`` reads a ``.npy`` file, a Zarr array or
an OME-Zarr image (its level 0, with its axes, scale and units), pools its
space axes (``--pool-axes``: ``yx``, or ``zyx`` through colnn's 3-D pooling)
``--levels`` times by ``--method`` (max, avg, min, nearest, mode), and writes
an OME-Zarr image: OME-NGFF 0.5 on Zarr v3 by default (``--ngff 0.4``: Zarr
v2), with ``dimension_names``, a chosen codec, optional shards, and each
level's scale and translation, so that viewers (napari, the OME-Zarr viewers)
and readers (ome-zarr-py, ngff-zarr) open it.

The modules, in the order a run uses them: :mod:`.plan` checks every flag
against INPUT's header before anything is written; :mod:`.source` opens
INPUT; :mod:`.methods` builds the levels as lazy Dask arrays; :mod:`.ngff`
writes the metadata; :mod:`.writer` computes all levels in one pass and puts
the folder in place only when it is complete. ``--scheduler`` runs the work on
a ``dask.distributed`` cluster. Dask, distributed and zarr come with
``pip install "colnn[dask]"`` and are imported only when the command runs.
"""

from __future__ import annotations

from .command import register, run

__all__ = ["register", "run"]
