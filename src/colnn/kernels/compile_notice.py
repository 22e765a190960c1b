"""A one-line notice, for the command-line applications, when colnn's kernels compile.

The first call of each kernel with new argument types compiles it (Numba,
``cache=True``); a later process loads it from the disk cache. The first
``colnn train`` compiles six kernels, about 10 s on 2 cores, which looks like
a hang unless something says why. The library stays silent: only an
application turns the notice on, with :func:`announce_compiles`.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

__all__ = ["announce_compiles", "NOTICE"]

NOTICE = "colnn: compiling kernels on first use (seconds per kernel, once each; cached on disk afterwards)"

_lock = threading.Lock()
_installed = False


def announce_compiles(stream: TextIO | None = None) -> None:
    """Print :data:`NOTICE` once on ``stream`` (default: stderr) when a colnn kernel starts compiling.

    Kernels loaded from Numba's disk cache do not count, so a run with a warm
    cache prints nothing. Calling it again does nothing. Imports Numba.
    """
    global _installed
    from numba.core import event

    with _lock:
        if _installed:
            return
        _installed = True

    class _Notice(event.Listener):
        """Numba calls it around every compile that misses the cache (under its compiler lock)."""

        printed = False

        def on_start(self, ev: Any) -> None:
            module = getattr(ev.data["dispatcher"].py_func, "__module__", "") or ""
            if not self.printed and module.startswith("colnn."):
                self.printed = True
                print(NOTICE, file=sys.stderr if stream is None else stream, flush=True)

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", _Notice())
