"""Cycle model of the generated accelerator, derived from the same spec as the hardware.

Layers of the model (docs/PERF.md says more):

* **Core** — the R x C PE array streaming one weight beat and one activation beat per cycle. Its
  cycles come from the RTL engineer's formula ``sim.cycles.core_cycles(spec, mode, k, tiles)``
  (docs/RTL.md), which the cocotb core testbench measures; this module never re-derives it. From
  it we take the *marginal* cost of one more output tile (``core(k, 2) - core(k, 1)``) and the
  fixed fill/drain of a job (``core(k, 1) - marginal``).
* **Memory** — the kernel's m_axi bundles (A values, A indices, B, C: one bundle each, see
  gen/regmap.py) each move ``spec.axi_bits`` per kernel cycle. Operand blocks live in buffers of
  ``spec.wbuf_depth`` / ``spec.abuf_depth`` words, so a reduction longer than
  ``spec.k_chunk_sparse`` / ``spec.k_chunk_dense`` is re-fetched per output tile; a GEMM larger
  than ``spec.max_k`` / ``spec.max_dim`` is split into several kernel launches.
* **Schedule** (offline scheduling) — per GEMM, which operand stays on chip while the other one
  streams (``loop_order``), and whether loads/stores overlap compute (``overlap``: double-buffered
  operand buffers + the core's shadow accumulators). Only what overlaps in the design is counted
  as hidden; everything else adds up.
* **PRUNE** (pre-generation) — once per training step, per weight layer: stream the dense master
  weights once, emit the FF and BP compressed copies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from .regmap import MODES
from .spec import ArchSpec
from .workloads import Gemm, lower_network, network

__all__ = ["Schedule", "GemmCost", "StepCost", "core_cycles", "core_source", "gemm_cost", "prune_cost", "hls_prune_cost",
           "step_cost", "LOOP_ORDERS", "PerfError", "BEST_SCHEDULE", "BASELINE_SCHEDULE",
           "PRUNE_GROUPS_PER_CYCLE", "HLS_KERNEL_SCHEDULE", "FETCHES"]

LOOP_ORDERS = ("auto", "a_stationary", "b_stationary")
FETCHES = ("axi", "hls_loops")

# The PRUNE unit's throughput: one M-group per cycle (the pipelined top-N-of-M unit of the RTL,
# and the PIPELINE II=1 group loop of the HLS kernel's prune_pass).
PRUNE_GROUPS_PER_CYCLE = 1


class PerfError(ValueError):
    """Bad input to the performance model (shape, mode, schedule)."""


@dataclass(frozen=True)
class Schedule:
    """How GEMMs are mapped onto the kernel (decided offline, per GEMM, from the static graph).

    loop_order: "a_stationary" keeps an A (weight) block on chip and streams B blocks past it;
      "b_stationary" the opposite; "auto" picks, per GEMM, the order with fewer cycles.
    overlap: loads of the next block and stores of the previous tile run while the current tile
      computes (double-buffered operand buffers, shadow accumulators). False: load, compute,
      store one after another per tile.
    fetch: "axi" moves operands at spec.axi_bits per cycle and bundle (a DMA in front of the RTL
      core); "hls_loops" counts the trip counts of the generated HLS kernel's fetch process
      (hls/sat_kernel.cpp, see _hls_loops_cost: weights in AXI-width beats into ping-pong banks,
      B one row of C values per cycle, the next unit loading while the current one is emitted,
      B stationary across a panel of row tiles) and of its PRUNE loops (hls_prune_cost). The
      kernel fixes its own loop order and overlap, so loop_order, overlap and prune_parallel
      do not apply to it.
    prune_parallel: the FF and BP PRUNE passes run side by side (two top-N units) instead of one
      after the other (the generated HLS kernel runs them one after the other).
    """

    loop_order: str = "auto"
    overlap: bool = True
    fetch: str = "axi"
    prune_parallel: bool = True

    def __post_init__(self) -> None:
        if self.loop_order not in LOOP_ORDERS:
            raise PerfError(f"loop_order must be one of {LOOP_ORDERS}, got {self.loop_order!r}")
        if self.fetch not in FETCHES:
            raise PerfError(f"fetch must be one of {FETCHES}, got {self.fetch!r}")


BEST_SCHEDULE = Schedule()
BASELINE_SCHEDULE = Schedule(loop_order="a_stationary", overlap=False, prune_parallel=False)
# The generated HLS kernel: B stationary when k fits one chunk, loads overlapped with compute
# (descriptive only: the fetch="hls_loops" count follows the kernel's own loops).
HLS_KERNEL_SCHEDULE = Schedule(loop_order="b_stationary", overlap=True, fetch="hls_loops", prune_parallel=False)


# ---- the core: from the RTL formula ------------------------------------------------------------

def _rtl_core_cycles() -> Callable[[ArchSpec, str, int, int], int] | None:
    try:
        from sim.cycles import core_cycles as f  # the RTL engineer's exact formula (docs/RTL.md)
    except ImportError:
        return None
    return f


def core_source() -> str:
    """Where the core's cycle counts come from: the RTL formula, or the provisional stand-in."""
    return "sim.cycles.core_cycles" if _rtl_core_cycles() else "provisional (sim/cycles.py missing)"


def _provisional_core_cycles(spec: ArchSpec, mode: str, k: int, tiles: int) -> int:
    # Stand-in only while sim/cycles.py does not exist: MICROARCH.md's ideal stream
    # (ceil(K/step) per tile, drains hidden) plus one array fill and one drain.
    return tiles * math.ceil(k / _step(spec, mode)) + spec.rows + spec.cols


def core_cycles(spec: ArchSpec, mode: str, k: int, tiles: int) -> int:
    """Cycles of the streaming core for ``tiles`` output tiles of reduction ``k`` (loads/drains of the core included)."""
    if mode not in MODES or mode == "PRUNE":
        raise PerfError(f"core mode must be SPARSE or DENSE, got {mode!r}")
    if mode == "SPARSE" and not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no SPARSE mode")
    if k < 1 or tiles < 1:
        raise PerfError(f"k and tiles must be >= 1, got k={k}, tiles={tiles}")
    f = _rtl_core_cycles() or _provisional_core_cycles
    return int(f(spec, mode, k, tiles))


def _step(spec: ArchSpec, mode: str) -> int:
    """Reduction elements the core consumes per cycle in ``mode``."""
    return spec.m if mode == "SPARSE" else spec.n


@lru_cache(maxsize=4096)
def _core_split(spec: ArchSpec, mode: str, k: int) -> tuple[int, int]:
    """(cycles per additional output tile, fixed fill/drain of one job) from the core formula."""
    one = core_cycles(spec, mode, k, 1)
    per_tile = core_cycles(spec, mode, k, 2) - one
    return per_tile, one - per_tile


# ---- one GEMM on the whole kernel --------------------------------------------------------------

@dataclass
class GemmCost:
    """Cycles and traffic of one GEMM (all its kernel launches)."""

    cycles: int = 0            # wall cycles of the kernel
    core_busy: int = 0         # cycles the core streams operands (tiles x per-tile cost + fill/drain)
    bytes_in: int = 0          # off-chip reads (A values + A indices + B)
    bytes_out: int = 0         # off-chip writes (C)
    launches: int = 0
    loop_order: str = ""
    mults: int = 0             # multiplier operations actually issued with a useful operand
    beats: int = 0             # operand beats the core consumes (tiles x ceil(k/step)): pure streaming

    @property
    def fill_drain(self) -> int:
        """Core cycles beyond streaming beats: pipeline fill, drains not hidden behind the next tile."""
        return self.core_busy - self.beats

    @property
    def stall(self) -> int:
        """Cycles the core waits for memory (transfers not hidden behind compute)."""
        return self.cycles - self.core_busy

    def add(self, other: "GemmCost", times: int = 1) -> None:
        self.cycles += other.cycles * times
        self.core_busy += other.core_busy * times
        self.bytes_in += other.bytes_in * times
        self.bytes_out += other.bytes_out * times
        self.launches += other.launches * times
        self.mults += other.mults * times
        self.beats += other.beats * times
        if other.loop_order and other.loop_order not in self.loop_order.split("+"):
            self.loop_order = "+".join(x for x in (self.loop_order, other.loop_order) if x)


def _axis_classes(length: int, tile: int) -> list[tuple[int, int]]:
    """Tiles along one axis as (size, count) classes: the full tiles, then the edge tile."""
    full, last = divmod(length, tile)
    return [(s, c) for s, c in ((tile, full), (last, 1)) if c and s]


def _beats(nbytes: float, spec: ArchSpec) -> int:
    return math.ceil(nbytes * 8 / spec.axi_bits)


def _a_bytes(spec: ArchSpec, mode: str, rows: int, k: int) -> tuple[int, int]:
    """(value bytes, index bytes) of an A block: compressed along k in SPARSE mode."""
    d = spec.mem_data_bits // 8
    if mode == "SPARSE":
        slots = rows * math.ceil(k / spec.m) * spec.n
        return slots * d, math.ceil(slots * spec.idx_bits / 8)
    return rows * k * d, 0


def _launch_cost(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, order: str, overlap: bool) -> GemmCost:
    """One kernel launch: rows, k, cols within the spec's limits, one fixed loop order."""
    d, acc = spec.mem_data_bits // 8, spec.mem_acc_bits // 8
    per_tile, fixed = _core_split(spec, mode, k)
    chunk = spec.k_chunk_sparse if mode == "SPARSE" else spec.k_chunk_dense
    resident = k <= chunk                     # one operand block can stay on chip across tiles
    row_cls, col_cls = _axis_classes(rows, spec.rows), _axis_classes(cols, spec.cols)

    def a_load(r: int) -> int:
        val, idx = _a_bytes(spec, mode, r, k)
        return max(_beats(val, spec), _beats(idx, spec))       # separate bundles, in parallel

    def b_load(c: int) -> int:
        return _beats(k * c * d, spec)

    def c_store(r: int, c: int) -> int:
        return _beats(r * c * acc, spec)

    # Outer axis = the stationary operand's tiles; inner axis = the streamed operand's tiles.
    if order == "a_stationary":
        outer, inner, outer_load, inner_load = row_cls, col_cls, a_load, b_load
    else:
        outer, inner, outer_load, inner_load = col_cls, row_cls, b_load, a_load

    def store(o: int, i: int) -> int:
        return c_store(o, i) if order == "a_stationary" else c_store(i, o)

    cost = GemmCost(launches=1, loop_order=order)
    tiles = sum(n for _, n in row_cls) * sum(n for _, n in col_cls)
    cost.core_busy = tiles * per_tile + fixed
    cost.beats = tiles * math.ceil(k / _step(spec, mode))
    # Overlapped: one fill/drain per launch. Sequential: the core restarts for every tile.
    total = fixed if overlap else 0
    first_outer = True
    for osize, ocount in outer:
        # Time of one outer iteration (all its inner tiles).
        inner_time = 0
        for isize, icount in inner:
            stream = inner_load(isize)
            if not resident:                  # both operands re-fetched per tile, chunk by chunk
                # separate bundles: in parallel when the fetch overlaps, one after the other if not
                stream = max(stream, outer_load(osize)) if overlap else stream + outer_load(osize)
            st = store(osize, isize)
            if overlap:
                inner_time += icount * max(per_tile, stream, st)
            else:
                inner_time += icount * (stream + per_tile + fixed + st)
        o_load = outer_load(osize) if resident else 0
        if overlap:
            # The next outer block prefetches while this outer iteration computes.
            step = max(inner_time, o_load)
            total += ocount * step
            if first_outer:
                total += o_load               # the very first block is not hidden
                first_outer = False
        else:
            total += ocount * (o_load + inner_time)
    if overlap:
        # First streamed block before compute starts, last tile's store after it ends.
        total += inner_load(inner[0][0]) + store(outer[-1][0], inner[-1][0])
    cost.cycles = max(total, cost.core_busy)

    # Traffic: the streamed operand once per outer tile; the stationary one once (or per tile).
    a_val, a_idx = _a_bytes(spec, mode, rows, k)
    a_total, b_total = a_val + a_idx, k * cols * d
    n_row_tiles, n_col_tiles = math.ceil(rows / spec.rows), math.ceil(cols / spec.cols)
    if not resident:
        cost.bytes_in = a_total * n_col_tiles + b_total * n_row_tiles
    elif order == "a_stationary":
        cost.bytes_in = a_total + b_total * n_row_tiles
    else:
        cost.bytes_in = a_total * n_col_tiles + b_total
    cost.bytes_out = rows * cols * acc
    kept = math.ceil(k / spec.m) * spec.n if mode == "SPARSE" else k
    cost.mults = rows * cols * kept
    return cost


def _classes(n: int) -> list[tuple[int, int]]:
    """Indices 0..n-1 as (representative, count): the first, the ones in between, the last."""
    return [(0, 1)] + ([(1, n - 2)] if n > 2 else []) + ([(n - 1, 1)] if n > 1 else [])


def _hls_loops_cost(spec: ArchSpec, mode: str, rows: int, k: int, cols: int) -> GemmCost:
    """One launch of the generated HLS kernel's GEMM, from its loop trip counts (II=1 loops).

    hls/sat_kernel.cpp ``fetch`` cuts k into the fewest chunks that fit the buffers, of equal
    size in whole steps, and walks units (output tile, k chunk): column tiles, then panels of
    row tiles sharing one B block (all row tiles when k fits one chunk, else ``M`` =
    ``ACC_TILES``, whose partial sums pe_array keeps between chunks), then chunks, then the
    panel's row tiles. Iteration u of ``units_loop`` runs side by side (ping-pong banks, nothing
    shared): ``load_w`` of unit u (R rows x ceil(nsteps*N / AXI_ELEMS) beats), ``load_b`` (one B
    row per cycle: slice (row tile - panel start) of the next group's block, ceil(B rows / panel
    row tiles) rows; the whole first block in iteration 0) and ``emit`` of unit u-1 (nsteps); the
    ``drain`` process writes the tile finished in u-2 (R cycles) at the same time. An iteration
    costs the longest of them: cycles = sum over iterations of that maximum (+ the last tile's
    drain). Trip counts only: loop pipeline depths and call overheads are not counted
    (C-simulation is not cycle-accurate); tests/test_csim.py checks this count against the loops'
    trip counts in C-simulation.
    """
    step = _step(spec, mode)
    r_, n_, m_ = spec.rows, spec.n, spec.m
    axi_elems = spec.axi_bits // spec.mem_data_bits
    max_chunk = spec.k_chunk_sparse if mode == "SPARSE" else spec.k_chunk_dense // n_ * n_
    n_kc = math.ceil(k / max_chunk)
    chunk = math.ceil(math.ceil(k / n_kc) / step) * step             # balanced_chunk: equal chunks
    n_rt, n_ct = math.ceil(rows / r_), math.ceil(cols / spec.cols)
    panel = n_rt if n_kc == 1 else m_                                # row tiles per B block
    n_pn = math.ceil(n_rt / panel)
    units = n_ct * n_rt * n_kc

    def nsteps(kc: int) -> int:
        return math.ceil(min(chunk, k - kc * chunk) / step)

    def load_w(kc: int) -> int:
        return r_ * math.ceil(nsteps(kc) * n_ / axi_elems)

    def b_rows(kc: int) -> int:
        return math.ceil(nsteps(kc) * step / m_) * m_

    def iteration(c: int, pn: int, kc: int, i: int) -> int:
        """Cycles of the iteration that emits unit i of group (column c, panel pn, chunk kc)."""
        size = min(panel, n_rt - pn * panel)                         # row tiles of this panel
        e = (c * n_rt + pn * panel) * n_kc + kc * size + i            # (only full panels before)
        t = nsteps(kc)                                               # emit
        if e + 1 < units:                                            # load_w of the next unit
            t = max(t, load_w(kc if i + 1 < size else (kc + 1) % n_kc))
        next_c = c + 1 if kc + 1 == n_kc and pn + 1 == n_pn else c   # the next group's column
        if next_c < n_ct:                                            # slice i of its B block
            rows_next = b_rows((kc + 1) % n_kc)
            sl = math.ceil(rows_next / size)
            t = max(t, max(0, min(rows_next, (i + 1) * sl) - i * sl))
        prev_done = kc == n_kc - 1 if i > 0 else kc == 0             # did unit e-1 finish a tile?
        if e >= 1 and prev_done:                                     # its drain
            t = max(t, r_)
        return t

    cycles = max(load_w(0), b_rows(0)) + r_                          # first load, last drain
    for c, cn in _classes(n_ct):
        for pn, pnn in _classes(n_pn):
            size = min(panel, n_rt - pn * panel)
            for kc in range(n_kc):
                for i in range(size):
                    cycles += cn * pnn * iteration(c, pn, kc, i)

    cost = GemmCost(launches=1, loop_order="hls_loops")
    cost.beats = n_rt * n_ct * math.ceil(k / step)
    cost.core_busy = cost.beats + r_                                 # + the drain of the last tile
    cost.cycles = cycles
    d, acc = spec.mem_data_bits // 8, spec.mem_acc_bits // 8
    a_val, a_idx = _a_bytes(spec, mode, rows, k)
    # A streams once per column tile, B once per panel of row tiles.
    cost.bytes_in = (a_val + a_idx) * n_ct + k * cols * d * n_pn
    cost.bytes_out = rows * cols * acc
    kept = math.ceil(k / spec.m) * spec.n if mode == "SPARSE" else k
    cost.mults = rows * cols * kept
    return cost


def _splits(length: int, limit: int) -> list[tuple[int, int]]:
    """Split ``length`` into launches of at most ``limit``: (size, count) pairs."""
    full, rest = divmod(length, limit)
    return [(s, c) for s, c in ((limit, full), (rest, 1)) if c and s]


def gemm_cost(spec: ArchSpec, mode: str, rows: int, k: int, cols: int,
              schedule: Schedule = BEST_SCHEDULE) -> GemmCost:
    """Cycles of C[rows][cols] = A[rows][k] . B[k][cols] in ``mode`` on the whole kernel.

    Dimensions above the spec's limits are split into several launches (k above ``max_k``: partial
    results summed by the host, outside this model).
    """
    for name, v in (("rows", rows), ("k", k), ("cols", cols)):
        if not isinstance(v, int) or v < 1:
            raise PerfError(f"GEMM {name} must be a positive integer, got {v!r}")
    orders = ("a_stationary", "b_stationary") if schedule.loop_order == "auto" else (schedule.loop_order,)
    total = GemmCost()
    for r, rn in _splits(rows, spec.max_dim):
        for kk, kn in _splits(k, spec.max_k):
            for c, cn in _splits(cols, spec.max_dim):
                if schedule.fetch == "hls_loops":
                    core_cycles(spec, mode, kk, 1)                       # same argument checks
                    best = _hls_loops_cost(spec, mode, r, kk, c)
                else:
                    # The overlapped estimate exposes the first load and the last store on top
                    # of tiles that each already count a load and a store, which over-counts tiny
                    # launches. Double buffers can always run their stages one after the other, so
                    # an overlapped launch never costs more than the sequential one.
                    overlaps = (schedule.overlap, False) if schedule.overlap else (False,)
                    best = min((_launch_cost(spec, mode, r, kk, c, o, ov) for o in orders for ov in overlaps),
                               key=lambda g: (g.cycles, g.bytes_in))
                total.add(best, rn * kn * cn)
    return total


def prune_cost(spec: ArchSpec, rows: int, k: int, parallel: bool = True) -> GemmCost:
    """PRUNE of a dense master W[rows][k]: FF copy (groups along k) and BP copy (groups along rows).

    One group per cycle per pass (PRUNE_GROUPS_PER_CYCLE); the FF and BP passes run side by side
    (``parallel``) or one after the other, as the generated HLS kernel does. The copies are
    written on their own bundles.
    """
    if not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode")
    d = spec.mem_data_bits // 8
    ff_groups, bp_groups = rows * math.ceil(k / spec.m), k * math.ceil(rows / spec.m)
    ff_val, ff_idx = _a_bytes(spec, "SPARSE", rows, k)
    bp_val, bp_idx = _a_bytes(spec, "SPARSE", k, rows)
    passes = 1 if parallel else 2                      # W streamed once, or once per pass
    read = passes * _beats(rows * k * d, spec)
    per_pass = [math.ceil(g / PRUNE_GROUPS_PER_CYCLE) for g in (ff_groups, bp_groups)]
    units = max(per_pass) if parallel else sum(per_pass)
    writes = max(_beats(x, spec) for x in (ff_val, ff_idx, bp_val, bp_idx))
    cycles = max(units, read, writes)
    return GemmCost(cycles=cycles, core_busy=units, bytes_in=passes * rows * k * d,
                    bytes_out=ff_val + ff_idx + bp_val + bp_idx, launches=1)


def hls_prune_cost(spec: ArchSpec, rows: int, k: int) -> GemmCost:
    """PRUNE of W[rows][k] in the generated HLS kernel, from its loop trip counts.

    ``prune_pass`` makes the FF copy, one M-group (M contiguous values) per iteration. The BP copy
    comes from ``prune_bp_staged``: per block of ``block`` columns, one iteration per row stages
    the block's row segments, then one iteration per group. ``block`` is up to AXI_ELEMS columns
    in a stage of one activation bank (C x abuf_depth x M values), each column at a pitch of
    ceil((rows-1)/AXI_ELEMS)*AXI_ELEMS + 1. W too tall for one column in the stage falls back to
    ``prune_pass`` reading in place: M reads with stride k per group, M cycles on one port. The two
    copies are made one after the other.
    """
    if not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode")
    m = spec.m
    axi_elems = spec.axi_bits // spec.mem_data_bits
    stage = spec.cols * spec.abuf_depth * m
    groups_r = math.ceil(rows / m)
    ff = rows * math.ceil(k / m)
    pitch = math.ceil((rows - 1) / axi_elems) * axi_elems + 1
    block = min(axi_elems, stage // pitch)
    bp = math.ceil(k / block) * rows + k * groups_r if block else k * groups_r * m
    d = spec.mem_data_bits // 8
    ff_val, ff_idx = _a_bytes(spec, "SPARSE", rows, k)
    bp_val, bp_idx = _a_bytes(spec, "SPARSE", k, rows)
    return GemmCost(cycles=ff + bp, core_busy=ff + k * groups_r, bytes_in=2 * rows * k * d,
                    bytes_out=ff_val + ff_idx + bp_val + bp_idx, launches=1)


# ---- one training step -------------------------------------------------------------------------

PASSES = ("FF", "BP", "WU")


@dataclass
class LayerCost:
    name: str
    passes: dict[str, GemmCost] = field(default_factory=dict)   # FF / BP / WU (absent if skipped)
    prune: GemmCost = field(default_factory=GemmCost)
    modes: dict[str, str] = field(default_factory=dict)
    macs: int = 0                                                # dense-equivalent MACs of the step

    @property
    def cycles(self) -> int:
        return sum(p.cycles for p in self.passes.values()) + self.prune.cycles


@dataclass
class StepCost:
    """A whole training step of one network on one architecture."""

    spec: ArchSpec
    network: str
    bdwp: bool
    batch: int
    layers: list[LayerCost]

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def mults(self) -> int:
        return sum(g.mults for layer in self.layers for g in layer.passes.values())

    def breakdown(self) -> dict[str, int]:
        """Where the cycles go: streaming beats per pass, the core's fill/drain, PRUNE, memory stalls."""
        out = {p: 0 for p in PASSES}
        out["fill_drain"], out["PRUNE"], out["transfer"] = 0, 0, 0
        for layer in self.layers:
            for p, g in layer.passes.items():
                out[p] += g.beats
                out["fill_drain"] += g.fill_drain
                out["transfer"] += g.stall
            out["PRUNE"] += layer.prune.cycles
        return out

    def utilization(self, cycles: int | None = None, mults: int | None = None) -> float:
        """Issued useful multiplies / (cycles x multipliers)."""
        c = self.cycles if cycles is None else cycles
        return (self.mults if mults is None else mults) / (c * self.spec.macs_per_cycle) if c else 0.0

    def seconds(self) -> float:
        return self.cycles / (self.spec.clock_mhz * 1e6)

    def effective_gops(self) -> float:
        """Dense-equivalent throughput: 2 x dense MACs of the step / step time (GOP/s)."""
        return 2 * self.macs / self.seconds() / 1e9


def step_cost(spec: ArchSpec, network_name: str, *, bdwp: bool, batch: int = 32,
              schedule: Schedule = BEST_SCHEDULE, ragged: str = "dense",
              dense_classifier: bool = True) -> StepCost:
    """Cycles of one training step: every layer's FF, BP, WU (+ PRUNE of each weight layer for BDWP)."""
    if bdwp and not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: BDWP needs a sparse architecture")
    gemms = lower_network(network_name, batch=batch, m=spec.m, bdwp=bdwp, ragged=ragged,
                          dense_classifier=dense_classifier)
    by_layer: dict[str, list[Gemm]] = {}
    for g in gemms:
        by_layer.setdefault(g.layer, []).append(g)
    layers = []
    for layer in network(network_name):
        lc = LayerCost(layer.name)
        for g in by_layer[layer.name]:
            mode = "SPARSE" if g.sparse else "DENSE"
            one = gemm_cost(spec, mode, g.rows, g.k, g.cols, schedule)
            cost = GemmCost()
            cost.add(one, g.count)
            lc.passes[g.pass_] = cost
            lc.modes[g.pass_] = mode
            lc.macs += g.macs
        if bdwp and layer.weights and any(lc.modes[p] == "SPARSE" for p in lc.modes):
            if schedule.fetch == "hls_loops":
                pc = hls_prune_cost(spec, layer.cout, layer.reduction)
            else:
                pc = prune_cost(spec, layer.cout, layer.reduction, schedule.prune_parallel)
            lc.prune.add(pc, layer.count)
        layers.append(lc)
    return StepCost(spec, network_name, bdwp, batch, layers)
