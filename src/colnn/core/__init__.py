"""The bottom layer: window geometry and the argument and array checks every op shares.

Nothing here imports Numba or any other part of colnn.
"""
