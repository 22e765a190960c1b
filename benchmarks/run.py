"""Run the benchmark: ``python benchmarks/run.py [--quick] [--json FILE]``, the same as ``colnn bench``.

Run it with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` unset
(``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run.py``).
"""

import sys

from colnn.apps.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
