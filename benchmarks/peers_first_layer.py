"""C2, C3, the SimpleConvNet step and predict from ``colnn.apps.bench_peers``, compactly, for before/after runs.

``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/peers_first_layer.py [repeat]``
"""

import sys

import colnn
from colnn.apps.bench_peers import run_peers

repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 7
rows = run_peers(repeat=repeat, only=["C2", "C3", "SimpleConvNet (100", "predict"])
print(colnn.__file__)
for row in rows:
    print(f"  {row['case'][:34]:34s} {row['impl']:12s} {row['median_ms']:8.2f} ms  "
          f"peer/colnn {row['ratio_to_colnn']:.2f}")
