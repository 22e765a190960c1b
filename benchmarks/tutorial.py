"""The tutorial's im2col and max-pooling layer, as the tutorial wrote them: the benchmark's baseline.

Copied from the project's seed (a Korean blog post on im2col for pooling, after
*Deep Learning from Scratch*); only the comments are translated and the example
calls left out. It is kept as written, bugs included: ``im2col`` allocates
float64 whatever the input, and ``Pooling.forward`` ignores ``pad`` in the
output size (so it cannot run padded cases). Do not fix it here; colnn is the
fixed version.
"""

import numpy as np


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """
    Take many images and turn them into a 2-D array (flatten).

    Parameters
    ----------
    input_data : 4-D input (number of images, channels, height, width)
    filter_h : filter height
    filter_w : filter width
    stride : stride
    pad : padding

    Returns
    -------
    col : 2-D array
    """
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1

    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], 'constant')
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))

    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]

    col = col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)
    return col


class Pooling :
    def __init__(self,pool_h,pool_w,stride=1,pad=0) :
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad

    def forward(self,x) :
        N, C, H, W = x.shape
        out_h = int(1+(H - self.pool_h)/self.stride) # the formula; pooling uses no padding, so it is left out
        out_w = int(1+(W - self.pool_w)/self.stride) # the formula; pooling uses no padding, so it is left out

        col = im2col(x,self.pool_h,self.pool_w,self.stride,self.pad) # flatten with im2col
        col = col.reshape(-1,self.pool_h*self.pool_w) # reshape for np.max
        out = np.max(col,axis=1) # np.max
        out = out.reshape(N,out_h,out_w,C).transpose(0,3,1,2) # (N,H,W,C) -> (N,C,H,W)
        return out
