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


def _check_input(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise DTypeError(f"{name}: cannot quantize dtype {x.dtype}")
    return x


def _extremes(x: np.ndarray, name: str) -> tuple[float, float]:
    """(min, max) of ``x`` as exact Python floats, raising NonFiniteError on NaN/Inf. Two reductions and
    no temporary array: a NaN makes both NaN and an Inf shows in one of them, so finiteness of the two
    extremes is finiteness of the tensor (the full scan below runs only to word the error)."""
    if x.size == 0:
        return 0.0, 0.0
    lo, hi = float(x.min()), float(x.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        xf = x.astype(np.float64, copy=False)
        bad = "NaN" if np.isnan(xf).any() else "Inf"
        raise NonFiniteError(f"{name}: {bad} in a tensor to be quantized ({int((~np.isfinite(xf)).sum())} "
                             f"non-finite of {x.size})")
    return lo, hi


def _scale_from(lo: float, hi: float, bits: int) -> float:
    qmax = (1 << (bits - 1)) - 1
    amax = max(hi, -lo)
    return amax / qmax if amax > 0 else 1.0


def scale_for(x, bits: int) -> float:
    """The symmetric per-tensor scale that maps max|x| to the largest positive code."""
    return _scale_from(*_extremes(_check_input(x, "x"), "x"), bits)


def quantize(x, bits: int, scale: float | None = None, name: str = "x") -> QTensor:
    """Quantize ``x`` to signed ``bits`` with a per-tensor scale (computed unless given).

    Five passes over ``x`` (min, max, divide, round in place, narrow): the host spends more time here
    than anywhere else in a training step (docs/SWEEP.md "end-to-end"). The codes are those of
    ``rint(float64(x) / scale)``; their range is checked from the extremes, since x -> rint(x / scale)
    is monotonic: the smallest and largest code are those of min(x) and max(x).
    """
    dtype = _container(bits)
    x = _check_input(x, name)
    lo, hi = _extremes(x, name)
    if scale is None:
        scale = _scale_from(lo, hi, bits)
    elif not (np.isfinite(scale) and scale > 0):
        raise QuantizationError(f"{name}: scale must be a positive finite number, got {scale!r}")
    lim = (1 << (bits - 1))
    qlo, qhi = float(np.rint(lo / scale)), float(np.rint(hi / scale))
    if x.size and (qlo < -lim or qhi > lim - 1):
        raise FixedPointOverflowError(f"{name}: values up to {max(abs(lo), abs(hi))!r} overflow int{bits} at "
                                      f"scale {scale!r} (codes [{int(qlo)}, {int(qhi)}] outside "
                                      f"[{-lim}, {lim - 1}])")
    q = np.true_divide(x, scale, dtype=np.float64)
    np.rint(q, out=q)
    return QTensor(q=q.astype(dtype), scale=float(scale), bits=bits)


def dequantize(acc, scale_a: float, scale_b: float) -> np.ndarray:
    """Float value of raw GEMM accumulators of operands quantized with scales ``scale_a``, ``scale_b``."""
    acc = np.asarray(acc)
    if acc.dtype.kind not in "iu":
        raise DTypeError(f"dequantize expects integer accumulators, got dtype {acc.dtype}")
    return np.multiply(acc, float(scale_a) * float(scale_b), dtype=np.float64)     # one pass, no int->float copy
