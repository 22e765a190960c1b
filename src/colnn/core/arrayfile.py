"""Reading NumPy array files (``.npy`` and ``.npz``) safely, with one-line errors naming the file.

``numpy.load`` is the wrong tool at a trust boundary: on a file that is not an
array it advises loading it "unsafely" with ``allow_pickle``, an empty file
gives ``EOFError``, and a crafted header can ask for terabytes before a byte of
data is read. Here the header is read with NumPy's own parser
(``numpy.lib.format``), checked (no object dtype, data size equal to what the
file holds), and only then is the data read (or, for an array larger than
memory, mapped: :func:`map_npy`). Every problem is an
:class:`ArrayFileError` (a ValueError) that names the file and what is wrong;
no message ever suggests unpickling. The format is NumPy's ``.npy``
specification (NEP 1); an ``.npz`` is a zip archive of ``.npy`` members.
"""

from __future__ import annotations

import contextlib
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .checks import describe

__all__ = ["ArrayFileError", "NpyHeader", "read_npy", "read_npz", "map_npy", "write_whole"]

_NPY_MAGIC = np.lib.format.MAGIC_PREFIX  # b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


class ArrayFileError(ValueError):
    """An array file is missing, unreadable or malformed; ``str(error)`` is one line naming the file."""


@contextlib.contextmanager
def _open_file(path: Any, magics: tuple[bytes, ...], expected: str) -> Iterator[tuple[Path, IO[bytes]]]:
    """``path`` as a Path and its file, opened at its start, if the file starts with one of ``magics``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {describe(path)}")
    path = Path(path)
    if path.is_dir():
        raise ArrayFileError(f"{path}: is a directory, not a file")
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed by the `with file:` below, once the errors are mapped)
    except FileNotFoundError:
        raise ArrayFileError(f"{path}: no such file") from None
    except OSError as error:
        raise ArrayFileError(f"{path}: cannot read ({error.strerror or error})") from None
    with file:
        head = file.read(len(_NPY_MAGIC))
        if not head.startswith(magics):
            raise ArrayFileError(f"{path}: not {expected}: it is {_kind(head)}")
        file.seek(0)
        yield path, file


def _kind(head: bytes) -> str:
    """What a file starting with ``head`` is, in words, for messages."""
    if not head:
        return "an empty file"
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if head.startswith(_ZIP_MAGICS):
        return "a zip archive (.npz)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a NumPy array file"
    if all(char.isprintable() or char.isspace() for char in text):
        return "text, not a NumPy array file"
    return "not a NumPy array file"


@dataclass(frozen=True)
class NpyHeader:
    """What a checked ``.npy`` header declares: the array's shape, dtype and layout, and where its data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _read_header(file: IO[bytes], size: int) -> NpyHeader:
    """The header of the ``.npy`` array at the start of ``file`` (``size`` bytes in all), checked.

    Raises ValueError (no file name: the caller adds it) for a bad header, an
    object dtype, or a data length other than the one the header declares.
    """
    version = np.lib.format.read_magic(file)
    if version not in _HEADER_READERS:
        raise ValueError(f".npy format version {version} is not supported (1.0 and 2.0 are)")
    shape, fortran_order, dtype = _HEADER_READERS[version](file)
    if dtype.hasobject:
        raise ValueError(f"holds Python objects (dtype {dtype}), which are never loaded; only plain arrays are")
    header = NpyHeader(tuple(shape), dtype, bool(fortran_order), file.tell())
    available = size - header.offset
    if header.nbytes != available:
        problem = "truncated" if header.nbytes > available else "trailing data"
        raise ValueError(f"{problem}: the header declares {dtype} {header.shape} ({header.nbytes} bytes) "
                         f"but {available} bytes follow it")
    return header


def _read_array(file: IO[bytes], size: int) -> np.ndarray:
    """The ``.npy`` array at the start of ``file``, which holds ``size`` bytes in all (ValueError as above)."""
    header = _read_header(file, size)
    data = bytearray(file.read(header.nbytes))  # a bytearray keeps the array writeable
    if len(data) != header.nbytes:
        raise ValueError(f"truncated: {len(data)} of {header.nbytes} bytes could be read")
    array = np.frombuffer(data, dtype=header.dtype).reshape(header.shape, order="F" if header.fortran_order else "C")
    # Native byte order, as every colnn function returns.
    return array.astype(header.dtype.newbyteorder("="), copy=False)


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """The array of a ``.npy`` file, writeable and in native byte order.

    Raises
    ------
    ArrayFileError
        When the file is missing, a directory, unreadable, empty, not an ``.npy``
        file (an ``.npz`` archive, text...), truncated, or holds Python objects.
    TypeError
        When ``path`` is not a str or path.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.arange(3))
    >>> read_npy(path)
    array([0, 1, 2])
    >>> _ = path.write_text("hello")
    >>> read_npy(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    colnn.core.arrayfile.ArrayFileError: .../x.npy: not an .npy array file: it is text, not a NumPy array file
    """
    with _open_file(path, (_NPY_MAGIC,), "an .npy array file") as (path, file):
        try:
            return _read_array(file, os.fstat(file.fileno()).st_size)
        except (ValueError, OSError, MemoryError) as error:
            raise ArrayFileError(f"{path}: {_reason(error)}") from None


def map_npy(path: str | os.PathLike[str]) -> tuple[NpyHeader, np.memmap]:
    """The array of a ``.npy`` file memory-mapped read-only, after the same checks as :func:`read_npy`.

    For files larger than memory (``colnn pool``): nothing is read until the
    map is indexed, and indexing reads only the cells asked for. The map keeps
    the file's byte order; ``header`` tells where the data starts, so that a
    reader in another process can map the file again without re-parsing it.

    Raises :class:`ArrayFileError` and TypeError as :func:`read_npy` does, with its messages.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.arange(6, dtype=np.uint16).reshape(2, 3))
    >>> header, mapped = map_npy(path)
    >>> header.shape, header.dtype, mapped[1, 1:]
    ((2, 3), dtype('uint16'), memmap([4, 5], dtype=uint16))
    """
    with _open_file(path, (_NPY_MAGIC,), "an .npy array file") as (path, file):
        try:
            header = _read_header(file, os.fstat(file.fileno()).st_size)
            if header.nbytes == 0:  # mmap cannot map zero bytes: an empty read-only array stands in
                empty = np.empty(header.shape, header.dtype).view(np.memmap)
                empty.flags.writeable = False
                return header, empty
            mapped = np.memmap(file, dtype=header.dtype, mode="r", offset=header.offset, shape=header.shape,
                               order="F" if header.fortran_order else "C")
        except (ValueError, OSError, MemoryError) as error:
            raise ArrayFileError(f"{path}: {_reason(error)}") from None
    return header, mapped


def read_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive by name (the member name without ``.npy``).

    Raises
    ------
    ArrayFileError
        When the file is missing, a directory, unreadable, empty, not a zip
        archive, damaged (truncated, bad checksum), or when a member is not a
        plain ``.npy`` array; the message names the file (and the member).
    TypeError
        When ``path`` is not a str or path.
    """
    with _open_file(path, _ZIP_MAGICS, "an .npz archive") as (path, file):
        try:
            with zipfile.ZipFile(file) as archive:
                arrays = {}
                for info in archive.infolist():
                    if not info.filename.endswith(".npy"):
                        raise ArrayFileError(f"{path}: member {info.filename!r} is not an .npy array")
                    with archive.open(info) as member:
                        try:
                            arrays[info.filename[:-4]] = _read_array(member, info.file_size)
                        except ValueError as error:
                            raise ArrayFileError(f"{path}: member {info.filename!r}: {_reason(error)}") from None
                return arrays
        except ArrayFileError:
            raise
        except (ValueError, OSError, EOFError, MemoryError, zipfile.BadZipFile, zlib.error) as error:
            raise ArrayFileError(f"{path}: damaged .npz archive (truncated?): {_reason(error)}") from None


def write_whole(path: str | os.PathLike[str], write: Callable[[Path], object]) -> None:
    """Write ``path`` by calling ``write`` on a file beside it, then renaming that file onto ``path``.

    A failure halfway (a full disk, an exception in ``write``) leaves any
    earlier file at ``path`` whole and no partial file behind; the rename is
    atomic on POSIX file systems.
    """
    path = Path(path)
    partial = path.with_name(f"{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _reason(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return "too large to load into memory"
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    # NumPy's advice for pickled data is to load it unsafely; colnn never does.
    if "pickle" in message.lower():
        return "holds pickled Python objects, which are never loaded; only plain arrays are"
    return message
