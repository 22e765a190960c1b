"""The Array API reference: the tutorial's im2col path, written once on the Python Array API standard.

It is ``strategy="im2col"`` for NumPy arrays (the readable reference the
compiled kernels are held to) and the only path of every other library's
arrays (PyTorch, JAX, CuPy, ``array_api_strict``), computed where they live:

- :mod:`.windows`: the window primitive (each window's cells) and its adjoint:
  im2col/col2im, unfold/fold;
- :mod:`.pooling`: max and average pooling by one reduction per window;
- :mod:`.conv`: convolution by im2col and one matrix product per group;
- :mod:`.dense`: the book's ReLU and Affine.
"""
