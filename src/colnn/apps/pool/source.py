"""``colnn pool``'s INPUT: a ``.npy`` file, a Zarr v2/v3 array, or an OME-Zarr image, opened and checked.

Nothing is read here but headers and metadata: :func:`open_source` says what
the input is (shape, dtype, and the axes, scale and units it records) or
raises one ValueError naming INPUT, and :meth:`Source.to_dask` gives the lazy
Dask array that the pyramid is computed from. A ``.npy`` file is read through
:mod:`colnn.core.arrayfile` (the reader of every colnn command, with its
messages), memory-mapped per chunk, so that a file larger than memory is read
a chunk at a time and a distributed worker maps the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.arrayfile import NpyHeader, map_npy
from .ngff import Axis, read_image

__all__ = ["Source", "open_source", "NpyChunks", "ZarrChunks", "InputUnreadable"]


class InputUnreadable(ValueError):
    """A chunk of INPUT could not be read while pooling (a damaged chunk, a file cut short since the check)."""


def _unreadable(path: str, error: Exception) -> InputUnreadable:
    return InputUnreadable(f"reading INPUT {path} failed ({type(error).__name__}: {_first_line(error)})")


@dataclass(frozen=True)
class NpyChunks:
    """A checked ``.npy`` file as an array-like for ``dask.array.from_array``, mapped anew for each chunk.

    It pickles as its path and header, so that a distributed worker maps the
    file itself instead of receiving its data through the scheduler; each
    chunk is copied out of the map (and into native byte order), so the map's
    pages never stay resident.
    """

    path: str
    header: NpyHeader

    @property
    def shape(self) -> tuple[int, ...]:
        return self.header.shape

    @property
    def dtype(self) -> np.dtype:
        return self.header.dtype.newbyteorder("=")

    @property
    def ndim(self) -> int:
        return len(self.header.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        # A fresh map per chunk, dropped on return: CPython unmaps it at once, so RSS stays one chunk.
        try:
            mapped = np.memmap(self.path, dtype=self.header.dtype, mode="r", offset=self.header.offset,
                               shape=self.header.shape, order="F" if self.header.fortran_order else "C")
            return np.array(mapped[key], dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise _unreadable(self.path, error) from None


@dataclass(frozen=True)
class ZarrChunks:
    """A Zarr array as an array-like for ``dask.array.from_array`` whose read errors name INPUT.

    Zarr's own exception (a codec's "Zstd decompression error") would read
    as a failure to write OUTPUT; it becomes :class:`InputUnreadable`.
    """

    array: Any
    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except Exception as error:  # a codec's, a store's: any failure to read is INPUT's
            raise _unreadable(self.path, error) from None


@dataclass(frozen=True)
class Source:
    """An opened INPUT: its array (a Zarr array or :class:`NpyChunks`) and what it records about itself.

    ``axes`` (with types and units), ``scale`` and ``translation`` come from an
    OME-Zarr image; a Zarr array's ``dimension_names`` give ``axes`` only; a
    ``.npy`` file records none of them.
    """

    array: Any
    kind: str
    name: str
    axes: tuple[Axis, ...] | None = None
    scale: tuple[float, ...] | None = None
    translation: tuple[float, ...] | None = None
    path: Path = Path()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    def to_dask(self, chunks: tuple[int, ...]) -> Any:
        """The input as a lazy Dask array of ``chunks`` (in the input's axis order)."""
        import dask.array as da
        from dask.base import tokenize

        if isinstance(self.array, NpyChunks):
            changed = Path(self.array.path).stat().st_mtime_ns
            return da.from_array(self.array, chunks=chunks, asarray=True, lock=False,
                                 name=f"colnn-npy-{tokenize(self.array, changed, chunks)}")
        reader = ZarrChunks(self.array, str(self.path), self.shape, self.dtype, len(self.shape))
        return da.from_array(reader, chunks=chunks, asarray=True, lock=False,
                             name=f"colnn-zarr-{tokenize(str(self.path), self.shape, str(self.dtype), chunks)}")


def open_source(path: Path) -> Source:
    """INPUT opened: a ``.npy`` file (any regular file is read as one), or a Zarr array or group.

    Raises
    ------
    ValueError
        One line naming INPUT: missing, not an array (text, ``.npz``, objects,
        truncated: :mod:`colnn.core.arrayfile`'s messages), a Zarr group that
        is not an OME-Zarr image, an OME-Zarr image whose metadata are broken.
    """
    if path.is_dir():
        return _open_zarr(path)
    if not path.exists():
        raise ValueError(f"INPUT {path}: no such file or directory")
    header, _ = map_npy(path)  # ArrayFileError (a ValueError) names the file
    return Source(NpyChunks(str(path), header), kind="a .npy file", name=path.stem, path=path)


def _open_zarr(path: Path) -> Source:
    import zarr

    if not any((path / name).is_file() for name in ("zarr.json", ".zarray", ".zgroup")):
        raise ValueError(f"INPUT {path}: a folder that is not a .npy file, a Zarr array or an OME-Zarr image "
                         f"(no zarr.json, .zarray or .zgroup in it)")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as error:  # zarr's many ways of saying "no Zarr node here"
        raise ValueError(f"INPUT {path}: a folder that is not a Zarr array, nor an OME-Zarr image "
                         f"({type(error).__name__}: {_first_line(error)})") from None
    if isinstance(node, zarr.Array):
        names = getattr(node.metadata, "dimension_names", None)
        axes = None
        if names and all(isinstance(n, str) for n in names):
            from .ngff import AXIS_TYPES

            if all(n in AXIS_TYPES for n in names) and len(set(names)) == len(names):
                axes = tuple(Axis(n, AXIS_TYPES[n]) for n in names)
        return Source(node, kind=f"a Zarr v{node.metadata.zarr_format} array", name=path.stem, axes=axes, path=path)
    image = read_image(node.attrs.asdict(), f"INPUT {path}")
    if image is None:
        members = sorted(name for name, _ in node.arrays())[:3]
        hint = f" (e.g. {path / members[0]})" if members else ""
        raise ValueError(f"INPUT {path}: a Zarr group without OME-NGFF multiscales; give one of its arrays{hint}")
    try:
        level0 = node[image.path]
    except KeyError:
        raise ValueError(f"INPUT {path}: its multiscales name level 0 {image.path!r}, which is not there") from None
    if not isinstance(level0, zarr.Array) or level0.ndim != len(image.axes):
        raise ValueError(f"INPUT {path}: level 0 {image.path!r} is not an array of {len(image.axes)} axes")
    return Source(level0, kind="an OME-Zarr image", name=image.name or path.stem, axes=image.axes,
                  scale=image.scale, translation=image.translation, path=path)


def _first_line(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else ""
