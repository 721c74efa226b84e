"""The user-facing accelerator: checks every operand, tiles large problems, runs the three GEMMs.

    import hostpy
    acc = hostpy.open("build/sat_2x8", backend="csim")   # "numpy", "csim", "pynq", "xrt"
    w2 = acc.prune(w)            # PRUNE on the kernel -> PrunedWeight(ff=..., bp=...)
    y  = acc.ff(w2, x)           # Y[Cout, B]  = W_ff . X[Cin, B]      (sparse)
    dx = acc.bp(w2, dy)          # dX[Cin, B]  = W_bp^T . dY[Cout, B]  (sparse, its own pruning)
    dw = acc.wu(dy, x)           # dW[Cout, Cin] = dY . X^T            (dense)

Operands are signed fixed-point integers of ``spec.data_bits`` (use :mod:`hostpy.quant` for float
tensors); results are the raw ``acc_bits`` accumulators in the int32/int64 container, bit-identical
to hostpy.golden on every backend.

Tiling: one kernel call handles rows, cols <= ``max_dim`` and k <= ``max_k`` (the kernel tiles
over its on-chip buffers internally). Larger problems, or smaller host tiles chosen with
``open(..., tile=(rows, k, cols))`` (to bound buffer sizes on a board), are split into calls on
a (row, col, k) grid. k tiles are multiples of M so N:M groups never straddle two calls, and the
partial sums of a k split are added and wrapped at ``acc_bits`` exactly as the accumulator would
(wrapping is a ring homomorphism), so the result equals the single-call result bit for bit.

PRUNE's output is already the SPARSE A layout: a PrunedWeight from :meth:`Accelerator.prune` keeps
the kernel's packed blocks, and ``ff``/``bp`` pass a block unchanged as the A of every call that
covers exactly that block (PRUNE's tiling, :func:`prune_tiles`, follows those calls), packing A
from the arrays only for the others (docs/HOSTPY.md "PRUNE's copies feed the sparse GEMMs").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.spec import ArchSpec

from .archdir import Arch, load_arch
from .device import Device, KernelCall
from .errors import (BackendUnavailableError, DTypeError, FixedPointOverflowError, NotNMError, ShapeError,
                     UnsupportedOperationError)
from .golden import wrap
from .abi import Abi, GroupedOperand
from .nm import NMCompressed, compress, decompress, is_nm

__all__ = ["Accelerator", "PrunedWeight", "PrunedCopies", "open_accelerator", "default_tile", "prune_tiles",
           "prune_reuse", "sparse_tiles"]


@dataclass(frozen=True)
class PrunedCopies:
    """PRUNE's own output buffers (memory ABI v2 compressed layout), block by block.

    ``ff`` / ``bp`` map a block ``(lane0, lane1, group0, group1)`` of the FF copy (lanes = rows of W,
    groups along Cin) / the BP copy (lanes = columns of W, groups along Cout) to the (value bytes,
    index bytes) the kernel wrote for it. Laid out by ``spec``'s ABI at ``n`` kept per group.
    """

    spec: ArchSpec
    n: int
    ff: dict
    bp: dict


@dataclass(frozen=True)
class PrunedWeight:
    """The two compressed copies PRUNE produces from one dense W[Cout, Cin].

    A PrunedWeight made by :meth:`Accelerator.prune` also keeps the kernel's packed output buffers
    (``packed``); :meth:`Accelerator.ff` / :meth:`Accelerator.bp` pass them unchanged as the A operand
    of every SPARSE call that covers exactly one PRUNE block (docs/HOSTPY.md "PRUNE's copies feed the
    sparse GEMMs"). Its arrays are then read-only, so the two views cannot drift apart. ``packed`` is
    not an init argument: ``PrunedWeight(ff, bp)`` and ``dataclasses.replace`` give a weight without
    it, whose calls pack A from the arrays.
    """

    ff: NMCompressed     # groups along Cin (axis 1): the FF operand
    bp: NMCompressed     # groups along Cout (axis 0): the BP operand, pruned separately
    packed: PrunedCopies | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.ff.shape


def _round_down(v: int, m: int) -> int:
    return max(m, v // m * m)


def _spans(length: int, block: int) -> list[tuple[int, int]]:
    """The [start, end) ranges a length is cut into by blocks of ``block`` (the last one shorter)."""
    return [(i, min(length, i + block)) for i in range(0, length, block)]


def default_tile(spec: ArchSpec) -> tuple[int, int, int]:
    """The host tile (rows, k, cols) of an Accelerator opened without ``tile``: the kernel's per-call limits."""
    return (spec.max_dim, spec.max_k, spec.max_dim)


def sparse_tiles(spec: ArchSpec, tile: tuple[int, int, int]) -> tuple[int, int]:
    """(lane block, reduction block) of the SPARSE calls of :meth:`Accelerator.gemm_sparse` at host ``tile``."""
    return tile[0], _round_down(tile[1], spec.m)


def prune_tiles(spec: ArchSpec, tile: tuple[int, int, int], rows: int, k: int) -> tuple[int, int]:
    """PRUNE's block sizes along W[rows, k]'s rows (Cout) and columns (Cin) at host ``tile``.

    Each axis takes, of the blocks the consumers use on it, the first one PRUNE can run: the FF
    calls' (rows: their lane block; columns: their reduction block), else the BP calls' (W_bp is
    [Cin, Cout]: rows of W are its reduction, columns its lanes), else the plain host tile. A
    block shorter than the axis must hold whole groups of M (FF groups along the columns, BP along
    the rows) and no block exceeds the host tile's on that axis (rounded down to M, at least M).
    """
    lanes, red = sparse_tiles(spec, tile)
    caps = (_round_down(tile[0], spec.m), _round_down(tile[1], spec.m))

    def pick(length: int, wanted: tuple[int, int], cap: int) -> int:
        for b in (min(w, length) for w in wanted):
            if b <= cap and (b == length or b % spec.m == 0):
                return b
        return cap
    return pick(rows, (lanes, red), caps[0]), pick(k, (red, lanes), caps[1])


def prune_reuse(spec: ArchSpec, tile: tuple[int, int, int], rows: int, k: int) -> dict[str, bool]:
    """Whether every SPARSE call of ``ff`` / ``bp`` on the PrunedWeight of a W[rows, k] takes its A
    buffers straight from PRUNE's output (its blocks and the calls' blocks coincide) at host ``tile``."""
    pr, pk = prune_tiles(spec, tile, rows, k)
    lanes, red = sparse_tiles(spec, tile)
    return {"ff": _spans(rows, pr) == _spans(rows, lanes) and _spans(k, pk) == _spans(k, red),
            "bp": _spans(k, pk) == _spans(k, lanes) and _spans(rows, pr) == _spans(rows, red)}


class Accelerator:
    """Checked, tiled N:M GEMMs on one :class:`Device`."""

    def __init__(self, device: Device, tile: tuple[int, int, int] | None = None):
        self.device = device
        self.arch: Arch = device.arch
        s = self.spec
        limits = default_tile(s)
        tile = limits if tile is None else tuple(int(t) for t in tile)
        if len(tile) != 3 or any(t < 1 or t > lim for t, lim in zip(tile, limits)):
            raise ShapeError(f"tile must be (rows, k, cols) with 1 <= each <= the kernel limits {limits}, got {tile}")
        if tile[1] < s.m:
            raise ShapeError(f"tile k={tile[1]} must be at least M={s.m} (k tiles hold whole N:M groups)")
        self.tile = tile
        self.calls = 0          # kernel invocations so far (tiling is visible in tests and benchmarks)
        self.a_from_prune = 0   # SPARSE calls whose A buffers were PRUNE's own output (no repack)
        self.abi = Abi(self.spec)   # the memory layout of every operand (hostpy/abi.py)

    # ---- properties -------------------------------------------------------------------------
    @property
    def spec(self):
        return self.arch.spec

    @property
    def backend(self) -> str:
        return self.device.backend

    def close(self) -> None:
        self.device.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Accelerator({self.spec.name!r}, backend={self.backend!r}, path={str(self.arch.path)!r})"

    # ---- operand checks -------------------------------------------------------------------------
    def _check_int(self, a, name: str, ndim: int = 2) -> np.ndarray:
        if isinstance(a, (NMCompressed, PrunedWeight)):
            raise DTypeError(f"{name}: expected a dense integer array, got {type(a).__name__}")
        a = np.asarray(a)
        if a.dtype.kind == "f":
            raise DTypeError(f"{name}: float array ({a.dtype}) given to a fixed-point kernel; quantize it first "
                             f"(hostpy.quant.quantize(x, bits={self.spec.data_bits}))")
        if a.dtype.kind not in "iu":
            raise DTypeError(f"{name}: expected a signed integer array, got dtype {a.dtype}")
        if a.ndim != ndim:
            raise ShapeError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
        if a.size == 0:
            raise ShapeError(f"{name}: empty operand of shape {a.shape}")
        bits = self.spec.data_bits
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        amin, amax = int(a.min()), int(a.max())
        if amin < lo or amax > hi:
            raise FixedPointOverflowError(f"{name}: values [{amin}, {amax}] outside the int{bits} operand range "
                                          f"[{lo}, {hi}] of {self.spec.name}")
        return a.astype(self.arch.data_dtype, copy=False)

    def _check_compressed(self, c: NMCompressed, name: str, axis: int) -> None:
        s = self.spec
        if not isinstance(c, NMCompressed):
            raise DTypeError(f"{name}: expected an NMCompressed operand, got {type(c).__name__}")
        # The dense baseline decompresses any n:M operand; a sparse kernel runs the n of nm.runtime_n.
        allowed = self.runtime_n if s.sparse else tuple(range(1, s.m))
        if c.m != s.m or c.n not in allowed:
            raise NotNMError(f"{name} is {c.n}:{c.m} compressed but {s.name} computes "
                             f"{' or '.join(f'{n}:{s.m}' for n in allowed)} (regmap.json nm.runtime_n)")
        if c.axis != axis:
            raise NotNMError(f"{name} is compressed along axis {c.axis}, this pass needs axis {axis}")
        lanes, k = (c.shape[0], c.shape[1]) if axis == 1 else (c.shape[1], c.shape[0])
        g = -(-k // s.m)
        if c.values.shape != (lanes, g, c.n) or c.indices.shape != (lanes, g, c.n):
            raise ShapeError(f"{name}: values {c.values.shape} / indices {c.indices.shape} do not match dense "
                             f"shape {c.shape} ({lanes} lanes x {g} groups x {c.n})")
        self._check_int(c.values.reshape(lanes, -1), f"{name} values")
        idx = c.indices.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= s.m):
            raise NotNMError(f"{name}: in-group index out of range [0, {s.m})")
        if c.n > 1 and not (np.diff(idx, axis=-1) > 0).all():
            raise NotNMError(f"{name}: in-group indices must be strictly ascending within a group")

    def _need_sparse(self, what: str) -> None:
        if not self.spec.sparse:
            raise UnsupportedOperationError(f"{what} needs a sparse architecture; {self.spec.name} is the dense baseline")

    def _weight(self, w, axis: int, name: str):
        """An FF (axis 1) / BP (axis 0) weight operand: PrunedWeight, NMCompressed, or a dense N:M array."""
        s = self.spec
        if isinstance(w, PrunedWeight):
            w = w.ff if axis == 1 else w.bp
        if isinstance(w, NMCompressed):
            self._check_compressed(w, name, axis)
            # The dense baseline has no index muxes: it multiplies the pruned weight densely.
            return w if s.sparse else decompress(w)
        wd = self._check_int(w, name)
        if not s.sparse:
            return wd
        if not is_nm(wd, s.n, s.m, axis):
            raise NotNMError(f"{name} of shape {wd.shape} is not {s.n}:{s.m} sparse along axis {axis} "
                             f"({'Cin' if axis == 1 else 'Cout'}); prune it first (acc.prune(w))")
        return compress(wd, s.n, s.m, axis=axis)

    # ---- the three passes ---------------------------------------------------------------------
    @property
    def runtime_n(self) -> tuple[int, ...]:
        """The kept-per-group counts a job may ask for (regmap.json nm.runtime_n: 1..M-1 on a sparse kernel)."""
        return tuple(int(n) for n in self.arch.regmap["nm"]["runtime_n"])

    def prune(self, w, n: int | None = None) -> PrunedWeight:
        """PRUNE on the kernel: dense W[Cout, Cin] -> FF copy (n:M along Cin) and BP copy (along Cout).

        ``n`` (default: the spec's N) must be one of :attr:`runtime_n`.
        """
        self._need_sparse("PRUNE")
        s = self.spec
        n = s.n if n is None else int(n)
        if n not in self.runtime_n:
            raise NotNMError(f"PRUNE at n={n}: {s.name}'s kernel keeps n in {list(self.runtime_n)} per group of {s.m}")
        wd = self._check_int(w, "W")
        rows, k = wd.shape
        g_k, g_r = -(-k // s.m), -(-rows // s.m)
        ff_v = np.zeros((rows, g_k, n), self.arch.data_dtype)
        ff_i = np.zeros((rows, g_k, n), np.uint8)
        bp_v = np.zeros((k, g_r, n), self.arch.data_dtype)
        bp_i = np.zeros((k, g_r, n), np.uint8)
        ff_blocks, bp_blocks = {}, {}
        rt, kt = prune_tiles(s, self.tile, rows, k)
        for r0, r1 in _spans(rows, rt):
            for k0, k1 in _spans(k, kt):
                out = self._run(KernelCall("PRUNE", r1 - r0, k1 - k0, 0, self.abi.pack_grouped(wd[r0:r1, k0:k1], s.rows),
                                           n=n))
                for buf in out.values():
                    buf.flags.writeable = False
                gk, gr = -(-(k1 - k0) // s.m), -(-(r1 - r0) // s.m)
                # FF copy: lanes = rows of W; BP copy: lanes = columns of W (both in lane tiles of R).
                ff_blocks[(r0, r1, k0 // s.m, k0 // s.m + gk)] = (out["ff_val"], out["ff_idx"])
                bp_blocks[(k0, k1, r0 // s.m, r0 // s.m + gr)] = (out["bp_val"], out["bp_idx"])
                ff_v[r0:r1, k0 // s.m:k0 // s.m + gk], ff_i[r0:r1, k0 // s.m:k0 // s.m + gk] = \
                    self.abi.unpack_compressed(out["ff_val"], out["ff_idx"], r1 - r0, k1 - k0, s.rows, n)
                bp_v[k0:k1, r0 // s.m:r0 // s.m + gr], bp_i[k0:k1, r0 // s.m:r0 // s.m + gr] = \
                    self.abi.unpack_compressed(out["bp_val"], out["bp_idx"], k1 - k0, r1 - r0, s.rows, n)
        for a in (ff_v, ff_i, bp_v, bp_i):
            a.flags.writeable = False           # the packed buffers below are their bytes: keep them equal
        pw = PrunedWeight(ff=NMCompressed(ff_v, ff_i, n, s.m, 1, (rows, k)),
                          bp=NMCompressed(bp_v, bp_i, n, s.m, 0, (rows, k)))
        object.__setattr__(pw, "packed", PrunedCopies(s, n, ff_blocks, bp_blocks))
        return pw

    def _kept_blocks(self, w, which: str) -> dict | None:
        """PRUNE's packed blocks of ``w``'s ``which`` copy ("ff"/"bp") when this kernel can take them as A."""
        p = w.packed if isinstance(w, PrunedWeight) else None
        if p is None or not self.spec.sparse or p.spec != self.spec:
            return None
        copy = w.ff if which == "ff" else w.bp
        return (p.ff if which == "ff" else p.bp) if copy.n == p.n else None

    def ff(self, w, x) -> np.ndarray:
        """Forward: Y[Cout, B] = W_ff . X[Cin, B] (sparse; dense on the dense baseline)."""
        a = self._weight(w, 1, "W (FF)")
        if isinstance(a, np.ndarray):
            return self.gemm(a, x)
        return self._gemm_sparse(a, x, self._kept_blocks(w, "ff"))

    def bp(self, w, dy) -> np.ndarray:
        """Backward data: dX[Cin, B] = W_bp^T . dY[Cout, B] with W pruned along Cout."""
        a = self._weight(w, 0, "W (BP)")
        if isinstance(a, np.ndarray):
            return self.gemm(np.ascontiguousarray(a.T), dy)
        lanes = NMCompressed(a.values, a.indices, a.n, a.m, 1, (a.shape[1], a.shape[0]))
        return self._gemm_sparse(lanes, dy, self._kept_blocks(w, "bp"))

    def wu(self, dy, x) -> np.ndarray:
        """Weight update: dW[Cout, Cin] = dY[Cout, B] . X[Cin, B]^T (dense)."""
        dy = self._check_int(dy, "dY")
        x = self._check_int(x, "X")
        if dy.shape[1] != x.shape[1]:
            raise ShapeError(f"WU: dY {dy.shape} and X {x.shape} must have the same batch (second) dimension")
        return self.gemm(dy, np.ascontiguousarray(x.T))

    # ---- the two GEMM modes, tiled --------------------------------------------------------------
    def _b_operand(self, b, k: int):
        """B as a dense [k, cols] array, or a GroupedOperand already in the kernel's B layout."""
        if isinstance(b, GroupedOperand):
            if b.tile != self.spec.cols:
                raise ShapeError(f"B in the grouped layout has lane tiles of {b.tile}, {self.spec.name} needs {self.spec.cols}")
            if b.length != k:
                raise ShapeError(f"B (grouped) has reduction length {b.length}, A has {k}")
            return b
        b = self._check_int(b, "B")
        if b.shape[0] != k:
            raise ShapeError(f"GEMM shapes do not chain: A has reduction length {k}, B has shape {b.shape}")
        return b

    def _b_bytes(self, b, k0: int, k1: int, c0: int, c1: int) -> np.ndarray:
        """The B buffer of one kernel call: the grouped operand itself when the call covers it whole."""
        if isinstance(b, GroupedOperand):
            if (k0, k1, c0, c1) == (0, b.length, 0, b.lanes):
                return b.buf
            b = self.abi.unpack_grouped(b.buf, b.lanes, b.length, b.tile).T   # host tiling splits it: re-lay out
        return self.abi.pack_grouped(b[k0:k1, c0:c1].T, self.spec.cols)

    @staticmethod
    def _b_cols(b) -> int:
        return b.lanes if isinstance(b, GroupedOperand) else b.shape[1]

    def gemm(self, a, b) -> np.ndarray:
        """Dense C[rows, cols] = A[rows, k] . B[k, cols] (DENSE mode); B may be a GroupedOperand."""
        s = self.spec
        a = self._check_int(a, "A")
        rows, k = a.shape
        b = self._b_operand(b, k)

        def call(r0, r1, k0, k1, c0, c1):
            return KernelCall("DENSE", r1 - r0, k1 - k0, c1 - c0, self.abi.pack_grouped(a[r0:r1, k0:k1], s.rows),
                              None, self._b_bytes(b, k0, k1, c0, c1))
        return self._tiled(rows, k, self._b_cols(b), self.tile[1], call)

    def gemm_sparse(self, a: NMCompressed, b) -> np.ndarray:
        """C = A . B with A N:M-compressed along k (axis 1): the FF/BP datapath (SPARSE mode)."""
        return self._gemm_sparse(a, b, None)

    def _gemm_sparse(self, a: NMCompressed, b, kept: dict | None) -> np.ndarray:
        """:meth:`gemm_sparse`; ``kept``: A's blocks as PRUNE wrote them, (lane0, lane1, group0, group1) ->
        (value bytes, index bytes), used as the call's A wherever a call covers exactly such a block."""
        self._need_sparse("a sparse GEMM")
        s = self.spec
        self._check_compressed(a, "A", 1)
        rows, k = a.shape
        b = self._b_operand(b, k)

        def call(r0, r1, k0, k1, c0, c1):
            g0, g1 = k0 // s.m, -(-k1 // s.m)
            a_buf = kept.get((r0, r1, g0, g1)) if kept else None
            if a_buf is None:
                a_buf = self.abi.pack_compressed(a.values[r0:r1, g0:g1], a.indices[r0:r1, g0:g1], s.rows)
            else:
                self.a_from_prune += 1
            return KernelCall("SPARSE", r1 - r0, k1 - k0, c1 - c0, *a_buf, self._b_bytes(b, k0, k1, c0, c1), n=a.n)
        return self._tiled(rows, k, self._b_cols(b), sparse_tiles(s, self.tile)[1], call)

    def _tiled(self, rows: int, k: int, cols: int, kt: int, make_call) -> np.ndarray:
        out = np.zeros((rows, cols), dtype=np.int64)
        for r0, r1 in _spans(rows, self.tile[0]):
            for c0, c1 in _spans(cols, self.tile[2]):
                acc = np.zeros((r1 - r0, c1 - c0), dtype=np.int64)
                for k0, k1 in _spans(k, kt):
                    res = self._run(make_call(r0, r1, k0, k1, c0, c1))["c"]
                    acc += self.abi.unpack_result(res, r1 - r0, c1 - c0).astype(np.int64)
                out[r0:r1, c0:c1] = wrap(acc, self.spec.acc_bits)
        return out.astype(self.arch.acc_dtype)

    def _run(self, call: KernelCall) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.device.execute(call)


def _make_device(arch: Arch, backend: str, options: dict) -> Device:
    if backend == "numpy":
        from .backends.numpy_backend import NumpyDevice
        return NumpyDevice(arch, **options)
    if backend == "csim":
        from .backends.csim import CsimDevice
        return CsimDevice(arch, **options)
    if backend == "pynq":
        from .backends.pynq_backend import PynqDevice
        return PynqDevice(arch, **options)
    if backend == "xrt":
        from .backends.xrt_backend import XrtDevice
        return XrtDevice(arch, **options)
    if backend == "rtl":
        from .backends.rtl import RtlDevice
        return RtlDevice(arch, **options)
    from .backends import BACKENDS
    raise BackendUnavailableError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")


def open_accelerator(arch_dir: str | Path, backend: str = "numpy", *, tile: tuple[int, int, int] | None = None,
                     **options) -> Accelerator:
    """Open the architecture generated in ``arch_dir`` on ``backend``; ``options`` go to the backend."""
    arch = load_arch(arch_dir)
    return Accelerator(_make_device(arch, backend, options), tile=tile)
