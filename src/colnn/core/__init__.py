"""The bottom layer: window geometry, the argument and array checks every op shares, and safe array-file I/O.

Nothing here imports Numba or any other part of colnn.
"""
