"""N:M masks and the compressed N:M format (golden model; NumPy only).

Conventions (documented in docs/FORMAT.md, shared by the HLS kernel and the RTL):

* Groups are M consecutive elements along the *group axis*. Group g covers positions
  g*M .. g*M+M-1. When the axis length L is not a multiple of M the last group is padded with
  implicit zeros: G = ceil(L / M) groups.
* Selection keeps the N elements of largest magnitude. Ties break towards the lower in-group index.
  Magnitude is exact: |int| is computed one bit wider, so -2^(b-1) outranks 2^(b-1)-1; for floats
  -0.0 and +0.0 have equal magnitude; NaN is rejected.
* A group with fewer than N non-zeros still keeps N slots (zeros, lowest free indices first); a slot
  may point at a padding position of the last group, where the value is 0.
* Compressed storage of a 2-D matrix is per *lane* (the other axis): ``values[L, G, N]`` in group
  order and ``indices[L, G, N]`` ascending within a group. ``axis=1`` groups along columns
  (FF: W[Cout, Cin] grouped along Cin); ``axis=0`` groups along rows (BP: W grouped along Cout),
  stored as the rows of W^T.
* Packed indices: a little-endian bitstream, ceil(log2 M) bits per index, in (lane, group, slot)
  order, LSB first; the stream is padded with zero bits to a whole byte.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["idx_bits", "nm_topn_indices", "nm_mask", "is_nm", "NMCompressed", "compress", "decompress",
           "pack_indices", "unpack_indices", "NMError"]


class NMError(ValueError):
    """An operand that is not what an N:M operation requires."""


def idx_bits(m: int) -> int:
    """Bits per in-group index: ceil(log2 M), at least 1."""
    return max(1, int(m - 1).bit_length())


def _check_nm(n: int, m: int) -> None:
    if not (isinstance(n, (int, np.integer)) and isinstance(m, (int, np.integer))):
        raise NMError(f"n and m must be integers, got {n!r}, {m!r}")
    if m < 2 or m > 16 or m & (m - 1):
        raise NMError(f"m must be a power of two in [2, 16], got {m}")
    if not 1 <= n < m:
        raise NMError(f"n must satisfy 1 <= n < m, got n={n}, m={m}")


def _magnitude(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            raise NMError("NaN in an operand to N:M selection")
        return np.abs(a).astype(np.float64)
    if a.dtype.kind in "iu":
        return np.abs(a.astype(np.int64))      # exact: |-128| = 128 > 127
    raise NMError(f"unsupported dtype {a.dtype} for N:M selection")


def _grouped(a: np.ndarray, m: int) -> np.ndarray:
    """[L, K] -> [L, G, M] with zero padding of the last group."""
    lanes, k = a.shape
    g = -(-k // m)
    if g * m != k:
        pad = np.zeros((lanes, g * m - k), dtype=a.dtype)
        a = np.concatenate([a, pad], axis=1)
    return a.reshape(lanes, g, m)


def _as_lanes(a: np.ndarray, axis: int) -> np.ndarray:
    if a.ndim != 2:
        raise NMError(f"expected a 2-D matrix, got shape {a.shape}")
    if axis not in (0, 1):
        raise NMError(f"axis must be 0 or 1, got {axis}")
    return a if axis == 1 else a.T


def nm_topn_indices(groups: np.ndarray, n: int) -> np.ndarray:
    """Ascending in-group indices of the N kept elements of each group ``[..., M]``."""
    mag = _magnitude(groups)
    # Stable sort on descending magnitude: among equal magnitudes the lower index comes first.
    order = np.argsort(-mag, axis=-1, kind="stable")[..., :n]
    return np.sort(order, axis=-1).astype(np.uint8)


def nm_mask(a: np.ndarray, n: int, m: int, axis: int = 1) -> np.ndarray:
    """Boolean mask of the N:M kept elements of a 2-D matrix, groups along ``axis``."""
    _check_nm(n, m)
    a = np.asarray(a)
    lanes = _as_lanes(a, axis)
    grp = _grouped(lanes, m)
    idx = nm_topn_indices(grp, n)
    mask = np.zeros(grp.shape, dtype=bool)
    np.put_along_axis(mask, idx.astype(np.intp), True, axis=-1)
    mask = mask.reshape(lanes.shape[0], -1)[:, : lanes.shape[1]]
    return mask if axis == 1 else mask.T


def is_nm(a: np.ndarray, n: int, m: int, axis: int = 1) -> bool:
    """True if every M-group along ``axis`` has at most N non-zeros."""
    _check_nm(n, m)
    lanes = _as_lanes(np.asarray(a), axis)
    return bool(((_grouped(lanes, m) != 0).sum(axis=-1) <= n).all())


@dataclass(frozen=True)
class NMCompressed:
    """A 2-D matrix in the compressed N:M format (see module docstring)."""

    values: np.ndarray     # [L, G, N], the operand dtype
    indices: np.ndarray    # [L, G, N], uint8, ascending within a group
    n: int
    m: int
    axis: int              # group axis of the dense matrix
    shape: tuple[int, int]  # dense shape

    @property
    def lanes(self) -> int:
        return self.values.shape[0]

    @property
    def groups(self) -> int:
        return self.values.shape[1]

    @property
    def k(self) -> int:
        """Length of the group (reduction) axis."""
        return self.shape[self.axis]

    def packed_indices(self) -> bytes:
        return pack_indices(self.indices, self.m)


def compress(a: np.ndarray, n: int, m: int, axis: int = 1, *, require_nm: bool = False) -> NMCompressed:
    """Prune ``a`` to N:M along ``axis`` (top-N by magnitude) and compress it.

    With ``require_nm=True`` the input must already be N:M (at most N non-zeros per group) and an
    ``NMError`` is raised otherwise; compression is then lossless.
    """
    _check_nm(n, m)
    a = np.asarray(a)
    if require_nm and not is_nm(a, n, m, axis):
        raise NMError(f"operand of shape {a.shape} is not {n}:{m} sparse along axis {axis}")
    lanes = _as_lanes(a, axis)
    grp = _grouped(lanes, m)
    idx = nm_topn_indices(grp, n)
    vals = np.take_along_axis(grp, idx.astype(np.intp), axis=-1)
    return NMCompressed(values=np.ascontiguousarray(vals), indices=np.ascontiguousarray(idx), n=n, m=m,
                        axis=axis, shape=(int(a.shape[0]), int(a.shape[1])))


def decompress(c: NMCompressed) -> np.ndarray:
    """Dense matrix of a compressed operand (pruned elements are zero)."""
    lanes, g, _ = c.values.shape
    dense = np.zeros((lanes, g * c.m), dtype=c.values.dtype)
    pos = (np.arange(g)[None, :, None] * c.m + c.indices.astype(np.intp)).reshape(lanes, -1)
    np.put_along_axis(dense, pos, c.values.reshape(lanes, -1), axis=1)
    k = c.shape[c.axis]
    dense = dense[:, :k]
    return dense if c.axis == 1 else dense.T


def pack_indices(indices: np.ndarray, m: int) -> bytes:
    """Bit-pack in-group indices LSB-first at ceil(log2 M) bits each (C order of ``indices``)."""
    b = idx_bits(m)
    flat = np.asarray(indices, dtype=np.uint8).reshape(-1)
    if flat.size and int(flat.max()) >= m:
        raise NMError(f"index {int(flat.max())} out of range for m={m}")
    bits = ((flat[:, None] >> np.arange(b, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bits, bitorder="little").tobytes()


def unpack_indices(data: bytes, m: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_indices`: ``count`` indices as a flat uint8 array."""
    b = idx_bits(m)
    need = -(-count * b // 8)
    if len(data) < need:
        raise NMError(f"packed index stream has {len(data)} bytes, {need} needed for {count} indices")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, count=need), bitorder="little")[: count * b]
    weights = (1 << np.arange(b)).astype(np.uint8)
    return (bits.reshape(count, b) * weights).sum(axis=1).astype(np.uint8)
