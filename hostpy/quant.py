"""Symmetric per-tensor fixed-point quantization of float tensors, and dequantization of results.

``q = round_half_even(x / scale)`` with ``scale = max|x| / (2^(bits-1) - 1)`` (a tensor of zeros
gets scale 1.0), so q lies in [-(2^(bits-1) - 1), 2^(bits-1) - 1]: the most negative code is never
produced, the range is symmetric. Rounding is NumPy's ``rint``: round half to even, deterministic.
A GEMM of two quantized tensors returns raw accumulators; ``dequantize(acc, sa, sb)`` = acc * sa*sb.
NaN/Inf raise :class:`NonFiniteError`; with an explicit scale, values that round outside the
operand range raise :class:`FixedPointOverflowError` (never a silent clip).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DTypeError, FixedPointOverflowError, NonFiniteError, QuantizationError

__all__ = ["QTensor", "quantize", "dequantize", "scale_for"]


@dataclass(frozen=True)
class QTensor:
    q: np.ndarray      # int8 / int16 container
    scale: float       # float value of one LSB
    bits: int

    def dequantize(self) -> np.ndarray:
        return self.q.astype(np.float64) * self.scale


def _container(bits: int) -> np.dtype:
    if not 2 <= bits <= 16:
        raise QuantizationError(f"bits must be between 2 and 16, got {bits}")
    return np.dtype(np.int8 if bits <= 8 else np.int16)


def _check_float(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DTypeError(f"{name}: cannot quantize dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        bad = "NaN" if np.isnan(x).any() else "Inf"
        raise NonFiniteError(f"{name}: {bad} in a tensor to be quantized ({int((~np.isfinite(x)).sum())} "
                             f"non-finite of {x.size})")
    return x


def scale_for(x, bits: int) -> float:
    """The symmetric per-tensor scale that maps max|x| to the largest positive code."""
    x = _check_float(x, "x")
    qmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(x).max()) if x.size else 0.0
    return amax / qmax if amax > 0 else 1.0


def quantize(x, bits: int, scale: float | None = None, name: str = "x") -> QTensor:
    """Quantize ``x`` to signed ``bits`` with a per-tensor scale (computed unless given)."""
    dtype = _container(bits)
    xf = _check_float(x, name)
    if scale is None:
        scale = scale_for(xf, bits)
    elif not (np.isfinite(scale) and scale > 0):
        raise QuantizationError(f"{name}: scale must be a positive finite number, got {scale!r}")
    q = np.rint(xf / scale)
    lim = (1 << (bits - 1))
    if q.size and (q.min() < -lim or q.max() > lim - 1):
        raise FixedPointOverflowError(f"{name}: values up to {float(np.abs(xf).max())!r} overflow int{bits} at "
                                      f"scale {scale!r} (codes [{int(q.min())}, {int(q.max())}] outside "
                                      f"[{-lim}, {lim - 1}])")
    return QTensor(q=q.astype(dtype), scale=float(scale), bits=bits)


def dequantize(acc, scale_a: float, scale_b: float) -> np.ndarray:
    """Float value of raw GEMM accumulators of operands quantized with scales ``scale_a``, ``scale_b``."""
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise DTypeError(f"dequantize expects integer accumulators, got dtype {acc.dtype}")
    return acc.astype(np.float64) * (float(scale_a) * float(scale_b))
