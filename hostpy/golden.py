"""Bit-exact golden models of what the SAT kernel computes (integer datapath).

Fixed-point semantics, shared with the HLS kernel and the RTL:

* Operands are signed two's-complement integers of ``data_bits`` (held in int8/int16 containers).
* Products are exact (2*data_bits); the accumulator is ``acc_bits`` wide and *wraps* (two's
  complement, no saturation). The spec validator guarantees no wrap for K <= max_k, so wrapping is
  only observable for out-of-spec inputs; it is modelled anyway so every rung agrees bit for bit.
* Outputs are the raw accumulators (int32 / int64 containers); no rounding or requantization
  happens in the kernel — scaling back to float is the host's job (hostpy.quant).

The GEMM shape is always ``C[R, Ncol] = A[R, K] . B[K, Ncol]``:

====== ================================ ===================== =================
pass   A                                B                     mode
====== ================================ ===================== =================
FF     W[Cout, Cin] compressed, axis 1  X[Cin, batch]         sparse
BP     W^T: W compressed along Cout     dY[Cout, batch]       sparse
WU     dY[Cout, batch] dense            X^T[batch, Cin]       dense
====== ================================ ===================== =================
"""
from __future__ import annotations

import numpy as np

from .nm import NMCompressed, NMError, compress

__all__ = ["wrap", "check_operand", "gemm_sparse", "gemm_dense", "prune", "ff", "bp", "wu"]


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of int64 values to ``bits`` (<= 64)."""
    x = np.asarray(x, dtype=np.int64)
    if bits >= 64:
        return x
    half = np.int64(1) << np.int64(bits - 1)
    return ((x + half) & ((half << np.int64(1)) - 1)) - half


def check_operand(a: np.ndarray, data_bits: int, name: str) -> np.ndarray:
    """Return ``a`` as int64 after checking it is an integer array within signed ``data_bits``."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise NMError(f"{name}: expected an integer array, got dtype {a.dtype}")
    lo, hi = -(1 << (data_bits - 1)), (1 << (data_bits - 1)) - 1
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise NMError(f"{name}: values outside int{data_bits} range [{lo}, {hi}]: "
                      f"min {int(a.min())}, max {int(a.max())}")
    return a.astype(np.int64)


def gemm_sparse(a: NMCompressed, b: np.ndarray, *, data_bits: int, acc_bits: int) -> np.ndarray:
    """C = A . B with A compressed along its reduction axis, computed as the PE does it.

    Each PE cycle takes one weight group (N values + N indices) and the M activations of that
    group; N M:1 muxes pick activation ``g*M + idx`` (zero beyond K) and N multipliers accumulate.
    """
    vals = check_operand(a.values, data_bits, "A values")          # [R, G, N]
    bb = check_operand(b, data_bits, "B")                           # [K, C]
    k = a.k
    if bb.ndim != 2 or bb.shape[0] != k:
        raise NMError(f"B must have shape [{k}, cols] to match A's reduction length, got {bb.shape}")
    r, g, n = vals.shape
    m = a.m
    # Activation groups with implicit zero padding beyond K: [G, M, C].
    bpad = np.zeros((g * m, bb.shape[1]), dtype=np.int64)
    bpad[:k] = bb
    agrp = bpad.reshape(g, m, -1)
    acc = np.zeros((r, bb.shape[1]), dtype=np.int64)
    idx = a.indices.astype(np.intp)
    for gi in range(g):                       # one weight group per PE cycle
        for s in range(n):                    # N multipliers
            sel = agrp[gi][idx[:, gi, s]]     # M:1 mux per row: [R, C]
            acc += vals[:, gi, s][:, None] * sel
    return wrap(acc, acc_bits)


def gemm_dense(a: np.ndarray, b: np.ndarray, *, data_bits: int, acc_bits: int) -> np.ndarray:
    """C = A . B, dense, exact products, ``acc_bits`` wrapping accumulator."""
    aa = check_operand(a, data_bits, "A")
    bb = check_operand(b, data_bits, "B")
    if aa.ndim != 2 or bb.ndim != 2 or aa.shape[1] != bb.shape[0]:
        raise NMError(f"GEMM shapes do not chain: A{aa.shape} . B{bb.shape}")
    # int64 matmul is exact here: |product| <= 2^30 and K <= 2^24, so |sum| < 2^54.
    return wrap(aa @ bb, acc_bits)


def prune(w: np.ndarray, n: int, m: int, *, data_bits: int) -> tuple[NMCompressed, NMCompressed]:
    """PRUNE (pre-generation): dense master W[Cout, Cin] -> (FF copy along Cin, BP copy along Cout)."""
    ww = check_operand(w, data_bits, "W")
    if ww.ndim != 2:
        raise NMError(f"W must be 2-D [Cout, Cin], got shape {ww.shape}")
    dt = np.int8 if data_bits <= 8 else np.int16
    ww = ww.astype(dt)
    return compress(ww, n, m, axis=1), compress(ww, n, m, axis=0)


def _as_lane_operand(c: NMCompressed) -> NMCompressed:
    """View any compressed matrix as A[L, K] with groups along its columns (what the PE consumes)."""
    if c.axis == 1:
        return c
    return NMCompressed(values=c.values, indices=c.indices, n=c.n, m=c.m, axis=1,
                        shape=(c.shape[1], c.shape[0]))


def ff(w_ff: NMCompressed, x: np.ndarray, *, data_bits: int, acc_bits: int) -> np.ndarray:
    """Forward: Y[Cout, batch] = W_ff . X with W compressed along Cin."""
    if w_ff.axis != 1:
        raise NMError("FF needs the copy of W compressed along Cin (axis 1)")
    return gemm_sparse(w_ff, x, data_bits=data_bits, acc_bits=acc_bits)


def bp(w_bp: NMCompressed, dy: np.ndarray, *, data_bits: int, acc_bits: int) -> np.ndarray:
    """Backward data: dX[Cin, batch] = W_bp^T . dY with W compressed along Cout (axis 0)."""
    if w_bp.axis != 0:
        raise NMError("BP needs the copy of W compressed along Cout (axis 0), pruned separately")
    return gemm_sparse(_as_lane_operand(w_bp), dy, data_bits=data_bits, acc_bits=acc_bits)


def wu(dy: np.ndarray, x: np.ndarray, *, data_bits: int, acc_bits: int) -> np.ndarray:
    """Weight update: dW[Cout, Cin] = dY[Cout, batch] . X^T[batch, Cin], dense."""
    return gemm_dense(dy, np.asarray(x).T, data_bits=data_bits, acc_bits=acc_bits)
