"""The fast path: Numba loops and the NumPy code that feeds them.

- :mod:`.threads`: the thread limit, and the serial path for small inputs;
- :mod:`.geometry`: clipped window bounds, offset and kernel dtypes;
- :mod:`.pool`: pooling by loops over planes (the default pooling strategy);
- :mod:`.box_pool`: pooling over boxes, the N-d home: 3-d window pools, adaptive and
  fractional pools, max_unpool's scatter and gather;
- :mod:`.unfold`: compiled im2col/col2im/unfold/fold;
- :mod:`.conv_chunked`, :mod:`.winograd`, :mod:`.winograd3d`, :mod:`.conv3d_planes`,
  :mod:`.image_gemm`, :mod:`.direct_conv`: the default convolution strategy;
  :mod:`.conv_transpose_phases`: transposed convolution's col2im by the stride's phases;
- :mod:`.epilogue`: bias and ReLU fused into a layer's output pass;
- :mod:`.relu`, :mod:`.adam`: ReLU forward/backward and Adam's step, one compiled pass each;
- :mod:`.pyramid`: an image pyramid's means (``colnn pool --method avg``), one compiled pass a block;
- :mod:`.blas`: small products on one BLAS thread;
- ``*_loops`` and :mod:`.rows`: the ``@njit`` loops themselves.

Nothing here imports Numba at import time: the loop modules are imported on a
kernel's first call and compiled then (or loaded from the disk cache). This
package depends only on :mod:`colnn.core`.
"""
