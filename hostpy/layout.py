"""Layout conversion so convolutions run as the three GEMMs (im2col / col2im).

Activations are NCHW. ``im2col`` gives X_col[C*kh*kw, B*Ho*Wo] with rows in (c, i, j) order and
columns in (b, y, x) order, so a conv weight W[Cout, Cin, kh, kw] reshaped to W[Cout, Cin*kh*kw]
(N:M groups along the flattened (Cin, kh, kw) axis, the first SR-STE grouping) gives:
FF  Y_col = W . X_col, BP dX_col = W^T . dY_col (then ``col2im``), WU dW = dY_col . X_col^T.
``col2im`` is the adjoint of ``im2col`` (overlapping windows add up), as the gradient needs.
"""
from __future__ import annotations

import numpy as np

from .abi import Abi, GroupedOperand
from .errors import ShapeError

__all__ = ["conv_out_size", "im2col", "im2col_grouped", "col2im", "cols_to_nchw", "nchw_to_cols"]


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    out = (size + 2 * pad - kernel) // stride + 1
    if out < 1 or stride < 1 or pad < 0:
        raise ShapeError(f"kernel {kernel}, stride {stride}, pad {pad} do not fit an input of size {size}")
    return out


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """NCHW x -> X_col[C*kh*kw, B*Ho*Wo]."""
    if x.ndim != 4:
        raise ShapeError(f"im2col expects NCHW (4-D) input, got shape {x.shape}")
    b, c, h, w = x.shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(w, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((c, kh, kw, b, ho, wo), dtype=x.dtype)
    for i in range(kh):                       # one strided slice per kernel offset
        for j in range(kw):
            cols[:, i, j] = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, b * ho * wo)


def im2col_grouped(x: np.ndarray, kh: int, kw: int, abi: Abi, stride: int = 1, pad: int = 0) -> GroupedOperand:
    """im2col written straight into the kernel's B layout: grouped(X_col^T, C) of memory ABI v2.

    Equal to ``abi.pack_grouped(im2col(x, ...).T, C)`` but without the dense X_col or a re-layout
    pass: every kernel offset's slice lands in its records directly. ``x`` must already hold the
    kernel's integers (quantize the NCHW tensor first: per-tensor quantization commutes with
    im2col, whose padding is 0). Falls back to im2col + pack when the layout's records do not fill
    whole words (then the buffer cannot be written in place).
    """
    if x.ndim != 4:
        raise ShapeError(f"im2col expects NCHW (4-D) input, got shape {x.shape}")
    s = abi.spec
    lo, hi = -(1 << (s.data_bits - 1)), (1 << (s.data_bits - 1)) - 1
    if x.dtype.kind not in "iu" or (x.size and (int(x.min()) < lo or int(x.max()) > hi)):
        raise ShapeError(f"im2col_grouped needs int{s.data_bits} operands of {s.name} (quantize first), got "
                         f"{x.dtype} in [{x.min() if x.size else 0}, {x.max() if x.size else 0}]")
    b, c, h, w = x.shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(w, kw, stride, pad)
    ncols, k, tile = b * ho * wo, c * kh * kw, s.cols
    target = abi.grouped_records_view(ncols, k, tile)
    if target is None:
        return GroupedOperand(abi.pack_grouped(im2col(x, kh, kw, stride, pad).T, tile), ncols, k, tile)
    buf, fields = target                                   # fields[col tile, col in tile, group, position]
    tiles = fields.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    slab = np.zeros((tiles * tile, c), dtype=fields.dtype)
    chans = np.arange(c)
    for i in range(kh):
        for j in range(kw):
            # columns (b, y, x) of this kernel offset, one row per column, Cin values each
            slab[:ncols] = xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride].transpose(0, 2, 3, 1).reshape(ncols, c)
            krow = (chans * kh + i) * kw + j                 # X_col row of (cin, i, j)
            fields[:, :, krow // s.m, krow % s.m] = slab.reshape(tiles, tile, c)
    return GroupedOperand(buf, ncols, k, tile)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kh: int, kw: int, stride: int = 1,
           pad: int = 0) -> np.ndarray:
    """Adjoint of :func:`im2col`: X_col[C*kh*kw, B*Ho*Wo] -> NCHW, summing overlapping windows."""
    b, c, h, w = x_shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(w, kw, stride, pad)
    if cols.shape != (c * kh * kw, b * ho * wo):
        raise ShapeError(f"col2im: expected columns of shape {(c * kh * kw, b * ho * wo)}, got {cols.shape}")
    xp = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    c6 = cols.reshape(c, kh, kw, b, ho, wo)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += c6[:, i, j].transpose(1, 0, 2, 3)
    return xp[:, :, pad:pad + h, pad:pad + w]


def cols_to_nchw(y: np.ndarray, b: int, ho: int, wo: int) -> np.ndarray:
    """GEMM output Y[C, B*Ho*Wo] -> NCHW."""
    return y.reshape(y.shape[0], b, ho, wo).transpose(1, 0, 2, 3)


def nchw_to_cols(y: np.ndarray) -> np.ndarray:
    """NCHW -> Y[C, B*H*W] (inverse of :func:`cols_to_nchw`)."""
    b, c, h, w = y.shape
    return y.transpose(1, 0, 2, 3).reshape(c, b * h * w)
