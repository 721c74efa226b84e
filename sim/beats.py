"""The data mover of the RTL core, in NumPy: a GEMM's operands as sat_core stream beats, and back.

This is what a DMA in front of ``sat_core`` does (docs/RTL.md): cut C = A . B into rows x cols
output tiles, row tile major, and send per tile ceil(K / step) beats on the weight stream (rows of
A: compressed groups in sparse mode, N dense weights per row in dense mode) and on the activation
stream (columns of B). Results come back as one frame per tile: R / spec.drain_rows beats of
spec.drain_rows x C sums (row-major, so the frame is the tile's rows in order).

Lanes the GEMM does not use (rows/columns past the matrix edge, positions >= K of the last beat,
activation positions >= N in dense mode, the index field in dense mode) are filled with random
garbage, not zeros: the core must ignore them, and the bit-exact comparison proves it does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gen.regmap import MODES
from gen.spec import ArchSpec
from hostpy.golden import gemm_dense, gemm_sparse
from hostpy.nm import NMCompressed

__all__ = ["GemmJob", "sparse_job", "dense_job", "weight_beat_bytes", "act_beat_bytes", "result_beat_bytes",
           "act_group", "step_of", "beats_per_tile", "PruneJob", "prune_job", "prune_lane_bytes"]


def act_group(spec: ArchSpec) -> int:
    """Activations per column per beat: M on a sparse core, N on the dense baseline."""
    return spec.m if spec.sparse else spec.n


def step_of(spec: ArchSpec, mode: str) -> int:
    """Reduction positions one beat advances: M sparse, N dense."""
    return spec.m if mode == "SPARSE" else spec.n


def beats_per_tile(spec: ArchSpec, mode: str, k: int) -> int:
    return -(-k // step_of(spec, mode))


def weight_beat_bytes(spec: ArchSpec) -> int:
    bits = spec.rows * spec.n * spec.mem_data_bits + (spec.rows * spec.n * spec.idx_bits if spec.sparse else 0)
    return -(-bits // 8)


def act_beat_bytes(spec: ArchSpec) -> int:
    return spec.cols * act_group(spec) * spec.mem_data_bits // 8


def result_beat_bytes(spec: ArchSpec) -> int:
    """spec.drain_rows output rows of C sums, row-major, so a tile's frame is its rows in order."""
    return spec.drain_rows * spec.cols * spec.mem_acc_bits // 8


def _dtype(spec: ArchSpec):
    return np.int8 if spec.mem_data_bits == 8 else np.int16


def _acc_dtype(spec: ArchSpec):
    return np.int32 if spec.mem_acc_bits == 32 else np.int64


def _garbage(rng: np.random.Generator, spec: ArchSpec, shape) -> np.ndarray:
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1))
    return rng.integers(lo, hi, size=shape).astype(np.int64)


def _pack_bits(fields: np.ndarray, bits: int) -> np.ndarray:
    """[beats, count] unsigned fields -> [beats, bytes], LSB-first, zero padded to a byte."""
    b = ((fields[..., None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(fields.shape[0], -1)
    pad = (-b.shape[1]) % 8
    if pad:
        b = np.concatenate([b, np.zeros((b.shape[0], pad), np.uint8)], axis=1)
    return np.packbits(b, axis=1, bitorder="little")


@dataclass
class GemmJob:
    """One sat_core job: the beats per tile, the expected result, and how tiles map back to C."""

    spec: ArchSpec
    mode: str                       # "SPARSE" or "DENSE" (gen.regmap.MODES keys)
    k: int
    shape: tuple[int, int]          # C's rows, cols
    tiles: list[tuple[int, int]]    # (row0, col0) per tile, in stream order
    w_frames: list[bytes]           # per tile: the weight-stream bytes of its beats
    a_frames: list[bytes]           # per tile: the activation-stream bytes
    expected: np.ndarray            # golden C (int64)

    @property
    def mode_code(self) -> int:
        return MODES[self.mode]

    @property
    def beats_per_tile(self) -> int:
        return beats_per_tile(self.spec, self.mode, self.k)

    def assemble(self, frames: list[bytes]) -> np.ndarray:
        """C from the result frames (one per tile: R / drain_rows beats of drain_rows x C sums)."""
        s = self.spec
        if len(frames) != len(self.tiles):
            raise AssertionError(f"expected {len(self.tiles)} result frames, got {len(frames)}")
        out = np.zeros(self.shape, dtype=np.int64)
        for (r0, c0), data in zip(self.tiles, frames):
            want = s.rows // s.drain_rows * result_beat_bytes(s)
            if len(data) != want:
                raise AssertionError(f"result frame of tile ({r0},{c0}) has {len(data)} bytes, expected {want}")
            tile = np.frombuffer(bytes(data), dtype=_acc_dtype(s)).reshape(s.rows, s.cols).astype(np.int64)
            r1, c1 = min(r0 + s.rows, self.shape[0]), min(c0 + s.cols, self.shape[1])
            out[r0:r1, c0:c1] = tile[: r1 - r0, : c1 - c0]
        return out


def _tile_grid(spec: ArchSpec, rows: int, cols: int) -> list[tuple[int, int]]:
    return [(r0, c0) for r0 in range(0, rows, spec.rows) for c0 in range(0, cols, spec.cols)]


def _act_frames(spec: ArchSpec, b: np.ndarray, step: int, beats: int, tiles, rng) -> list[bytes]:
    """Per tile: beat g, column j, position p < step holds B[g*step + p][col0 + j]."""
    k, cols = b.shape
    g_lanes = act_group(spec)
    n_cols = math.ceil(cols / spec.cols) * spec.cols
    # Everything outside B (and positions >= step of a lane group) is garbage.
    lanes = _garbage(rng, spec, (beats, g_lanes, n_cols))
    bp = _garbage(rng, spec, (beats * step, n_cols))
    bp[:k, :cols] = b
    lanes[:, :step, :] = bp.reshape(beats, step, n_cols)
    frames = {}
    for _, c0 in tiles:
        if c0 not in frames:
            blk = lanes[:, :, c0:c0 + spec.cols].transpose(0, 2, 1)       # [beat][col][pos]
            frames[c0] = np.ascontiguousarray(blk).astype(_dtype(spec)).tobytes()
    return [frames[c0] for _, c0 in tiles]


def sparse_job(spec: ArchSpec, a: NMCompressed, b: np.ndarray, rng: np.random.Generator) -> GemmJob:
    """A sparse-mode job: A compressed along k (values [rows][G][N], indices ascending)."""
    if not spec.sparse:
        raise ValueError(f"{spec.name} is the dense baseline: it has no sparse mode")
    if a.axis != 1 or a.n != spec.n or a.m != spec.m:
        raise ValueError(f"A must be compressed {spec.n}:{spec.m} along axis 1, got {a.n}:{a.m} axis {a.axis}")
    rows, k = a.shape
    cols = b.shape[1]
    beats = -(-k // spec.m)
    tiles = _tile_grid(spec, rows, cols)
    n_rows = math.ceil(rows / spec.rows) * spec.rows
    vals = _garbage(rng, spec, (n_rows, beats, spec.n))
    vals[:rows] = a.values
    idx = rng.integers(0, spec.m, size=(n_rows, beats, spec.n))
    idx[:rows] = a.indices
    w_frames = []
    for r0, _ in tiles:
        v = vals[r0:r0 + spec.rows].transpose(1, 0, 2).reshape(beats, -1)     # [beat][row*N+slot]
        i = idx[r0:r0 + spec.rows].transpose(1, 0, 2).reshape(beats, -1)
        beat = np.concatenate([v.astype(_dtype(spec)).view(np.uint8).reshape(beats, -1),
                               _pack_bits(i, spec.idx_bits)], axis=1)
        w_frames.append(beat.tobytes())
    expected = gemm_sparse(a, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
    return GemmJob(spec, "SPARSE", k, (rows, cols), tiles, w_frames,
                   _act_frames(spec, b, spec.m, beats, tiles, rng), expected)


def dense_job(spec: ArchSpec, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> GemmJob:
    """A dense-mode job: N dense weights of each row per beat."""
    rows, k = a.shape
    cols = b.shape[1]
    beats = -(-k // spec.n)
    tiles = _tile_grid(spec, rows, cols)
    n_rows = math.ceil(rows / spec.rows) * spec.rows
    ap = _garbage(rng, spec, (n_rows, beats * spec.n))
    ap[:rows, :k] = a
    w_frames = []
    for r0, _ in tiles:
        v = ap[r0:r0 + spec.rows].reshape(spec.rows, beats, spec.n).transpose(1, 0, 2).reshape(beats, -1)
        parts = [v.astype(_dtype(spec)).view(np.uint8).reshape(beats, -1)]
        if spec.sparse:          # the index field exists on the bus but is ignored in dense mode
            parts.append(_pack_bits(rng.integers(0, spec.m, size=(beats, spec.rows * spec.n)), spec.idx_bits))
        w_frames.append(np.concatenate(parts, axis=1).tobytes())
    expected = gemm_dense(a, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
    return GemmJob(spec, "DENSE", k, (rows, cols), tiles, w_frames,
                   _act_frames(spec, b, spec.n, beats, tiles, rng), expected)


# ---- mode PRUNE ------------------------------------------------------------------------------

def prune_lane_bytes(spec: ArchSpec) -> int:
    """Bytes of one compressed group on m_axis_p: N values, then N packed indices, byte aligned."""
    return -(-(spec.n * spec.mem_data_bits + spec.n * spec.idx_bits) // 8)


@dataclass
class PruneJob:
    """One PRUNE job: the dense groups as s_axis_a beats, and the golden compressed groups."""

    spec: ArchSpec
    order: str                      # "FF" (rows of W along Cin) or "BP" (columns of W along Cout)
    groups: int                     # real groups; the last beat's spare lanes carry garbage groups
    a_frame: bytes                  # all input beats
    expected: NMCompressed          # hostpy.golden.prune's copy for this order

    @property
    def beats(self) -> int:
        return -(-self.groups // self.spec.cols)

    def check(self, frame: bytes) -> None:
        """Compare every compressed group of the m_axis_p frame with the golden copy, bit-exactly."""
        s = self.spec
        lane = prune_lane_bytes(s)
        want_len = self.beats * s.cols * lane
        if len(frame) != want_len:
            raise AssertionError(f"{self.order} PRUNE frame has {len(frame)} bytes, expected {want_len}")
        raw = np.frombuffer(frame, dtype=np.uint8).reshape(-1, lane)[: self.groups]
        vb = s.n * s.mem_data_bits // 8
        vals = raw[:, :vb].copy().view(_dtype(s)).reshape(-1, s.n).astype(np.int64)
        bits = np.unpackbits(raw[:, vb:], axis=1, bitorder="little")[:, : s.n * s.idx_bits]
        idx = (bits.reshape(-1, s.n, s.idx_bits).astype(np.int64) << np.arange(s.idx_bits)).sum(axis=2)
        want_v = self.expected.values.reshape(-1, s.n).astype(np.int64)
        want_i = self.expected.indices.reshape(-1, s.n).astype(np.int64)
        for name, got, want in (("values", vals, want_v), ("indices", idx, want_i)):
            if not np.array_equal(got, want):
                g = int(np.argwhere((got != want).any(axis=1))[0][0])
                raise AssertionError(f"{self.order} PRUNE {name}: group {g} is {got[g].tolist()}, "
                                     f"expected {want[g].tolist()}")


def prune_job(spec: ArchSpec, w: np.ndarray, order: str, expected: NMCompressed,
              rng: np.random.Generator) -> PruneJob:
    """The PRUNE job producing one of W's copies: FF groups rows of W along Cin, BP groups columns
    of W along Cout (a short last group is zero padded, as hostpy.nm pads it). ``expected`` is
    the matching copy from hostpy.golden.prune."""
    if not spec.sparse:
        raise ValueError(f"{spec.name} is the dense baseline: it has no PRUNE mode")
    if order not in ("FF", "BP"):
        raise ValueError(f"order must be 'FF' or 'BP', got {order!r}")
    lanes = np.asarray(w if order == "FF" else w.T, dtype=np.int64)
    k = lanes.shape[1]
    g_per_lane = -(-k // spec.m)
    padded = np.zeros((lanes.shape[0], g_per_lane * spec.m), dtype=np.int64)
    padded[:, :k] = lanes
    groups = padded.reshape(-1, spec.m)                              # lane-major, then along K
    n = groups.shape[0]
    beats = -(-n // spec.cols)
    spare = _garbage(rng, spec, (beats * spec.cols - n, spec.m))     # the core must keep lanes apart
    data = np.concatenate([groups, spare]).astype(_dtype(spec)).tobytes()
    return PruneJob(spec, order, n, data, expected)
