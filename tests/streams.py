"""What a command printed on stderr, less the one line that depends on the kernel cache.

The command-line apps announce the first compile of a kernel (``colnn.kernels.compile_notice``).
Whether a test sees it depends on which test compiled that kernel first, in this
process or another, so tests that compare stderr exactly compare it without that line.
"""

from __future__ import annotations

from colnn.kernels.compile_notice import NOTICE


def without_compile_notice(err: str) -> str:
    """``err`` with the compile notice's line removed (it appears at most once)."""
    return err.replace(NOTICE + "\n", "")
