"""Cycle model of the generated accelerator, derived from the same spec as the hardware.

Every figure this module returns is **modelled** (docs/PERF.md says what was checked against what):

* **RTL kernel** (``Schedule(fetch="rtl_kernel")``, the default) — the dataflow of the
  SystemVerilog kernel (issue 9): per kernel call, output tiles column tile outer, row tile
  inner; B's column tile loaded once into one bank of a ping-pong buffer (``abuf_depth`` records
  per bank) and reused by every row tile while the next column tile loads into the other bank
  ("B streaming", B re-read for every output tile, when it does not fit); A streamed through
  FIFOs by read masters that run ahead; results written while the next tile computes. Every
  operand is charged at its memory ABI v2 size (``hostpy.abi.Abi.call_bytes``) on its own AXI
  master, and the masters share the bandwidth of the memory bank gen/regmap.py maps them to
  (``MemoryModel.banking``: ``per_bank``, or one ``shared`` channel). Read latency is exposed at
  the start of a call, write latency at its end; in between it is hidden by outstanding bursts
  unless a master's in-flight words cannot cover it. :func:`kernel_call` is one call (the unit
  the Verilator harness measures); :func:`gemm_cost` and :func:`step_cost` add calls up.
* **Core** — the streaming core's cycles come from the RTL engineer's exact formula
  ``sim.cycles.core_cycles`` (and ``prune_cycles`` for PRUNE), measured on the RTL core by
  cocotb; this module never re-derives them. It takes the marginal cost of one more tile
  (``core(k, 2) - core(k, 1)``) and the job's fixed fill/drain from it.
* **Generated HLS kernel** (``Schedule(fetch="hls_loops")``) — *trip-count cycles* of the ABI v2
  HLS kernel's loops, counted by gen/hls_schedule.py (the HLS engineer's, checked against the
  C-simulated kernel's loop counters) under its stated II assumptions
  (``hls_schedule.II_ASSUMPTIONS``); not cycles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from hostpy.abi import Abi

from .memmodel import MemoryModel
from .prune_layout import PruneShape, prune_refusal, prune_shape
from .regmap import MODES, pointer_banks
from .spec import ArchSpec
from .workloads import Gemm, lower_network, network

__all__ = ["Schedule", "GemmCost", "StepCost", "LayerCost", "core_cycles", "core_source", "kernel_call",
           "kernel_call_cycles", "kernel_validation_calls", "prune_call", "gemm_cost", "prune_cost", "hls_prune_cost",
           "step_cost",
           "PerfError", "BEST_SCHEDULE", "RTL_KERNEL_SCHEDULE", "HLS_KERNEL_SCHEDULE", "FETCHES",
           "DEFAULT_MEMORY", "READ_MAX_BURST", "READ_OUTSTANDING", "WRITE_OUTSTANDING", "KERNEL_CALL_OVERHEAD",
           "PASSES"]

FETCHES = ("rtl_kernel", "hls_loops")

# The RTL kernel's AXI masters (issue 9; sat_axi_rd / sat_axi_wr on branch rtl): read bursts of at
# most READ_MAX_BURST beats with READ_OUTSTANDING of them in flight (a burst is requested when the
# FIFO has room for it: READ_OUTSTANDING x READ_MAX_BURST words in flight), write bursts awaiting
# their B response at most WRITE_OUTSTANDING. Structure of the RTL, not spec fields.
READ_MAX_BURST = 64
READ_OUTSTANDING = 4
WRITE_OUTSTANDING = 8
# Cycles every RTL-kernel call takes beyond the terms above: ap_start to the sequencer, its argument
# checks and first DMA commands, the record unpackers and beat register in front of the core, the
# last write command and ap_done. CALIBRATED, not derived: the RTL kernel of branch rtl
# (sim.run.measure_kernel_cycles, read latency 64, no pauses) took exactly this many cycles more
# than the rest of this model in all 14 GEMM calls measured at 369f62d (7 shapes x SPARSE/DENSE;
# 13 of 14 at a4fb89f). docs/PERF.md lists the measurements.
KERNEL_CALL_OVERHEAD = 15
# sat_bbuf's read pipeline (RAM read register, skid register, output register): cycles a buffered
# B record takes from its write to the core's beat join. Measured in the RTL (docs/RTL.md "B reuse").
BBUF_PIPELINE = 3
# Extra cycles of a PRUNE call where a grouped record of W is several AXI words (sat_1x16,
# sat_2x8_kv260): the multi-word unpacker's extra register and the last multi-word read
# (docs/RTL.md "PRUNE": fixed part 183 instead of 180). CALIBRATED on those two specs' measured
# PRUNE [64, 2048] (docs/PERF.md), not derived.
PRUNE_MULTIWORD_OVERHEAD = 3
# Cycles every PRUNE call of the RTL kernel takes beyond the rest of this model: the compressed
# stream's output path (the skid buffer on the core's PRUNE stream, then sat_repack) in front of the
# four write DMAs, which a GEMM's result path does not have. CALIBRATED, not derived: on hostpy's rtl
# backend every PRUNE call measured (3 specs, 3 shapes, several n; docs/PERF.md) took exactly 2
# cycles more than the model without it. Not traced cycle by cycle.
PRUNE_OUTPUT_PIPELINE = 2

DEFAULT_MEMORY = MemoryModel()


class PerfError(ValueError):
    """Bad input to the performance model (shape, mode, schedule)."""


@dataclass(frozen=True)
class Schedule:
    """Which kernel's dataflow is modelled, on which memory.

    fetch: "rtl_kernel" models the RTL kernel's dataflow (module docstring) on ``memory``;
      "hls_loops" takes the generated HLS kernel's trip counts from gen/hls_schedule.py (``memory`` not used).
    memory: the MemoryModel of the DDR (the same object configures the Verilator harness).
    b_reuse: True (the RTL kernel as generated) keeps B's column tile in the ping-pong buffer
      sat_bbuf for all its row tiles (B streamed again per output tile only when a column tile is
      deeper than a bank); False is the kernel before that buffer (B streamed for every output
      tile), kept as a variant so bench shows what the buffer buys.
    """

    fetch: str = "rtl_kernel"
    memory: MemoryModel = DEFAULT_MEMORY
    b_reuse: bool = True

    def __post_init__(self) -> None:
        if self.fetch not in FETCHES:
            raise PerfError(f"fetch must be one of {FETCHES}, got {self.fetch!r}")
        if not isinstance(self.memory, MemoryModel):
            raise PerfError(f"memory must be a gen.memmodel.MemoryModel, got {type(self.memory).__name__}")


RTL_KERNEL_SCHEDULE = Schedule()
BEST_SCHEDULE = RTL_KERNEL_SCHEDULE          # the headline: the RTL kernel as it is being built
HLS_KERNEL_SCHEDULE = Schedule(fetch="hls_loops")


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


def _provisional_core_cycles(spec: ArchSpec, mode: str, k: int, tiles: int, n: int) -> int:
    # Stand-in only while sim/cycles.py does not exist: MICROARCH.md's ideal stream
    # (the beats per tile, drains hidden) plus one array fill and one drain.
    return tiles * _beats_per_tile(spec, mode, k, n) + spec.rows + spec.cols


def core_cycles(spec: ArchSpec, mode: str, k: int, tiles: int, n: int | None = None) -> int:
    """Cycles of the streaming core for ``tiles`` output tiles of reduction ``k`` (loads/drains of the core included).

    ``n``: the SPARSE job's kept weights per group (runtime N; default the spec's n_hw)."""
    if mode not in MODES or mode == "PRUNE":
        raise PerfError(f"core mode must be SPARSE or DENSE, got {mode!r}")
    if mode == "SPARSE" and not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no SPARSE mode")
    if k < 1 or tiles < 1:
        raise PerfError(f"k and tiles must be >= 1, got k={k}, tiles={tiles}")
    n = _job_n(spec, mode, n)
    f = _rtl_core_cycles()
    if f is None:
        return _provisional_core_cycles(spec, mode, k, tiles, n)
    return int(f(spec, mode, k, tiles, n=n) if mode == "SPARSE" else f(spec, mode, k, tiles))


def _prune_core_cycles(spec: ArchSpec, groups: int, n: int) -> int:
    """The core's PRUNE job at ``n`` over ``groups`` M-groups (sim.cycles.prune_cycles)."""
    try:
        from sim.cycles import prune_cycles
    except ImportError:
        return math.ceil(groups / spec.cols) * _spg(spec, n) + 3
    return int(prune_cycles(spec, groups, n=n))


def _job_n(spec: ArchSpec, mode: str, n: int | None) -> int | None:
    """The job's runtime n (SPARSE and PRUNE; default the spec's n_hw), None for DENSE."""
    if mode == "DENSE":
        return None
    n = spec.n if n is None else n
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n < spec.m:
        raise PerfError(f"runtime n must be an integer in [1, M-1={spec.m - 1}], got {n!r}")
    return n


@lru_cache(maxsize=256)
def _spg(spec: ArchSpec, n: int | None) -> int:
    """Records (array steps) per group of a SPARSE job at runtime n: the ABI's ceil(n / n_hw)."""
    return Abi(spec).subrecords(n)


def _step(spec: ArchSpec, mode: str) -> int:
    """Reduction elements one core beat covers in ``mode`` (SPARSE: a group of M, in ceil(n/n_hw) beats)."""
    return spec.m if mode == "SPARSE" else spec.n


def _beats_per_tile(spec: ArchSpec, mode: str, k: int, n: int | None) -> int:
    """Core beats per output tile: ceil(k/M) groups x ceil(n/n_hw) records (SPARSE), ceil(k/N) (DENSE)."""
    beats = math.ceil(k / _step(spec, mode))
    return beats * _spg(spec, n) if mode == "SPARSE" else beats


@lru_cache(maxsize=4096)
def _core_split(spec: ArchSpec, mode: str, k: int, n: int | None) -> tuple[int, int]:
    """(cycles per additional output tile, fixed fill/drain of one job) from the core formula."""
    one = core_cycles(spec, mode, k, 1, n)
    per_tile = core_cycles(spec, mode, k, 2, n) - one
    return per_tile, one - per_tile


# ---- cost records ------------------------------------------------------------------------------

@dataclass
class GemmCost:
    """Modelled cycles and traffic of one GEMM (all its kernel calls), or of one PRUNE.

    cycles = core_busy + start + tail + sum(stalls): the core's own cycles (the measured formula),
    per call the kernel's fixed pipeline (KERNEL_CALL_OVERHEAD), the exposed first load and read
    latency, the last result write and its write response, and the cycles the core waits for a
    memory resource (keyed by that resource).
    """

    cycles: int = 0            # modelled wall cycles of the kernel calls
    core_busy: int = 0         # the core's cycles (sim.cycles formula: tiles x per-tile + fill/drain)
    bytes_in: int = 0          # off-chip reads at their ABI v2 size
    bytes_out: int = 0         # off-chip writes at their ABI v2 size
    launches: int = 0
    loop_order: str = ""
    mults: int = 0             # multiplier operations issued with a useful operand
    beats: int = 0             # operand beats the core consumes (tiles x ceil(k/step)): pure streaming
    exact_beats: float = 0.0   # beats without padding to tiles and groups: rows*cols*k / (R*C*step)
    start: int = 0             # per call: kernel pipeline + read latency + the first B column tile's load
    tail: int = 0              # per call: the last result tile's write + write response
    stalls: dict[str, int] = field(default_factory=dict)   # core waiting for memory, by resource
    b_streaming_calls: int = 0  # calls whose B column tile did not fit a buffer bank

    @property
    def fill_drain(self) -> int:
        """Core cycles beyond streaming beats: pipeline fill, drains not hidden behind the next tile."""
        return self.core_busy - self.beats

    @property
    def stall(self) -> int:
        """Cycles beyond the core's own: exposed first load/latency, last write, memory stalls."""
        return self.cycles - self.core_busy

    def add(self, other: "GemmCost", times: int = 1) -> None:
        for name in ("cycles", "core_busy", "bytes_in", "bytes_out", "launches", "mults", "beats", "start", "tail",
                     "b_streaming_calls"):
            setattr(self, name, getattr(self, name) + getattr(other, name) * times)
        self.exact_beats += other.exact_beats * times
        for key, v in other.stalls.items():
            self.stalls[key] = self.stalls.get(key, 0) + v * times
        if other.loop_order and other.loop_order not in self.loop_order.split("+"):
            self.loop_order = "+".join(x for x in (self.loop_order, other.loop_order) if x)


# ---- memory: banks and masters -----------------------------------------------------------------

def _channels(spec: ArchSpec, mem: MemoryModel) -> dict[str, str]:
    """Pointer argument -> the memory channel it reaches (regmap bank, or one shared channel)."""
    banks = pointer_banks(spec)
    if mem.banking == "shared":
        return {a: "shared channel" for a in banks}
    return {a: f"bank {b}" for a, b in banks.items()}


def _read_rate(mem: MemoryModel, burst: int) -> float:
    """Words per cycle one read master sustains: its in-flight words over the round trip of a burst."""
    inflight = READ_OUTSTANDING * READ_MAX_BURST
    return min(1.0, mem.words_per_cycle, inflight / (mem.read_latency + min(burst, READ_MAX_BURST)))


def _read_stream_credit(mem: MemoryModel, words: int, burst: int) -> float:
    """Cycles a latency-limited read stream of ``words`` saves against ``words`` / its steady rate.

    The steady rate (in-flight words per round trip of a burst) holds once the stream runs; but the
    first window of in-flight words was requested at the start of the call, and its round trip is
    the read latency already counted there. Window w of F in-flight words arrives (w x round trip)
    after the first, at the channel's rate (one word per cycle at most): the stream's words have
    all arrived floor((W-1)/F) x round trip + ((W-1) mod F + 1) / rate cycles after the first one.
    (Added after the RTL kernel measured at read latency 448 showed the steady rate alone 11.6 %
    high on a short stream; it restates sat_axi_rd's documented behaviour, it is not a fit.)
    """
    f = READ_OUTSTANDING * READ_MAX_BURST
    period = mem.read_latency + min(burst, READ_MAX_BURST)
    bw = min(1.0, mem.words_per_cycle)                  # a window arrives at the channel's rate
    if words <= 0 or f / period >= bw:                  # not latency-bound: no window structure
        return 0.0
    full, rest = divmod(words - 1, f)
    return words * period / f - (full * period + (rest + 1) / bw)


def _write_rate(mem: MemoryModel, burst: int) -> float:
    """Words per cycle one write master sustains with WRITE_OUTSTANDING bursts of ``burst`` words."""
    b = max(1, min(burst, READ_MAX_BURST))
    return min(1.0, mem.words_per_cycle, WRITE_OUTSTANDING * b / (b + mem.write_latency))


def _memory_time(demand: dict[str, float], rates: dict[str, float], channels: dict[str, str],
                 mem: MemoryModel) -> tuple[float, str]:
    """Cycles the memory needs for ``demand`` words per argument, and the binding resource.

    Each argument's master moves at most its own rate; the masters on one channel share its
    ``words_per_cycle``.
    """
    best, key = 0.0, ""
    per_channel: dict[str, float] = {}
    for arg, words in demand.items():
        if words <= 0:
            continue
        t = words / rates[arg]
        if t > best:
            best, key = t, f"{arg} master"
        per_channel[channels[arg]] = per_channel.get(channels[arg], 0.0) + words
    for ch, words in per_channel.items():
        t = words / mem.words_per_cycle
        if t > best + 1e-9:
            users = "+".join(a for a in demand if channels[a] == ch and demand[a] > 0)
            best, key = t, f"{ch} ({users})"
    return best, key


def _involves(key: str, arg: str) -> bool:
    """Does the resource named ``key`` (``"x master"`` or ``"channel (x+y)"``) carry argument ``arg``?"""
    if key == f"{arg} master":
        return True
    return "(" in key and arg in key[key.index("(") + 1:key.rindex(")")].split("+")


# ---- one kernel call on the RTL kernel ---------------------------------------------------------

def _check_call(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None = None) -> int | None:
    for name, v in (("rows", rows), ("k", k), ("cols", cols)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise PerfError(f"GEMM {name} must be a positive integer, got {v!r}")
    if mode not in ("SPARSE", "DENSE"):
        raise PerfError(f"kernel_call mode must be SPARSE or DENSE (PRUNE: prune_call), got {mode!r}")
    if mode == "SPARSE" and not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no SPARSE mode")
    if k > spec.max_k or rows > spec.max_dim or cols > spec.max_dim:
        raise PerfError(f"one kernel call takes k <= max_k={spec.max_k} and rows, cols <= max_dim={spec.max_dim}, "
                        f"got rows={rows}, k={k}, cols={cols} (gemm_cost splits larger GEMMs into calls)")
    return _job_n(spec, mode, n)


@lru_cache(maxsize=16384)
def _kernel_call(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, mem: MemoryModel,
                 b_reuse: bool, n: int | None) -> GemmCost:
    abi = Abi(spec)
    wb = abi.word_bytes
    per_tile, fixed = _core_split(spec, mode, k, n)
    n_rt, n_ct = -(-rows // spec.rows), -(-cols // spec.cols)
    tiles = n_rt * n_ct
    groups = -(-k // spec.m)
    # Every operand at its ABI v2 size; the layout pads every lane tile, so all tiles are equal.
    size = abi.call_bytes(mode, rows, k, cols, n)
    a_args = [a for a in ("a_val", "a_idx") if a in size]
    a_tile = {a: size[a] // wb // n_rt for a in a_args}           # one row tile of A, words
    b_tile = size["b"] // wb // n_ct                                # one column tile of B (G records)
    c_tile = abi.result_tile_words
    streaming = (not b_reuse) or groups > spec.abuf_depth
    channels = _channels(spec, mem)
    # A: the whole A region once per column tile, one contiguous stream; B: one column tile per
    # load (or per output tile when streaming); C: one tile per write command (tiles of one column
    # tile are not contiguous in the result layout).
    rates = {a: _read_rate(mem, size[a] // wb) for a in a_args}
    rates["b"] = _read_rate(mem, b_tile)
    rates["c"] = _write_rate(mem, c_tile)

    def column_tile(b_loads: int) -> tuple[float, str]:
        demand = {a: n_rt * a_tile[a] for a in a_args}
        demand["b"] = n_rt * b_tile if streaming else b_loads * b_tile
        demand["c"] = n_rt * c_tile
        return _memory_time(demand, rates, channels, mem)

    compute = n_rt * per_tile                                        # the core's cycles per column tile
    cost = GemmCost(launches=1, loop_order="rtl_kernel")
    cost.core_busy = tiles * per_tile + fixed
    if cost.core_busy != core_cycles(spec, mode, k, tiles, n):          # the split must add up to the formula
        raise AssertionError("core split does not reproduce sim.cycles.core_cycles")
    # B column tiles loaded while a column tile computes (B reused): the first column tile's own
    # B streams in during it and, with several row tiles, the next one's too; every later column
    # tile but the last loads the next. With one row tile each load is effectively that column
    # tile's own stream (the prefetch of ct+1 cannot start before ct's load ends).
    if streaming or n_rt == 1:
        windows = [(n_ct, 1)]
    else:
        windows = [(1, 2 if n_ct > 1 else 1), (n_ct - 2, 1), (1 if n_ct > 1 else 0, 0)]
    stalls: dict[str, float] = {}
    for count, b_loads in windows:
        if count <= 0:
            continue
        t, key = column_tile(b_loads)
        if t > compute:
            stalls[key] = stalls.get(key, 0.0) + count * (t - compute)
    # A master bound by its in-flight words gets its first window at full rate (its latency is in
    # the call's start): that much of its stall is not there.
    words = {a: n_ct * n_rt * a_tile[a] for a in a_args}
    words["b"] = n_ct * (n_rt if streaming else 1) * b_tile
    for arg in [*a_args, "b"]:
        key = f"{arg} master"
        if key in stalls:
            burst = size[arg] // wb if arg != "b" else b_tile
            stalls[key] = max(0.0, stalls[key] - _read_stream_credit(mem, words[arg], burst))
    stall_total = 0
    for key, v in stalls.items():
        wait = math.ceil(v - 1e-9)
        if wait:
            cost.stalls[key + (", B streaming" if streaming and _involves(key, "b") else "")] = wait
            stall_total += wait
    # Start: the first read's latency, plus sat_bbuf's read pipeline when B is buffered. The buffer
    # replays a record the cycle after it is written, so the first row tile consumes B as it
    # arrives (no fill wait); it waits only when B's first column tile arrives slower than that
    # row tile computes (e.g. two-word records at one word per cycle).
    cost.start = KERNEL_CALL_OVERHEAD + mem.read_latency
    if not streaming:
        cost.start += BBUF_PIPELINE
        fill_t, fill_key = _memory_time({"b": b_tile}, rates, channels, mem)
        if n_rt > 1 and fill_t > per_tile:             # (one row tile: in the column-tile windows above)
            wait = math.ceil(fill_t - per_tile - 1e-9)
            cost.stalls[f"{fill_key}, first B column tile"] = wait
            stall_total += wait
    # Tail: the last result tile's burst (its words, then the write response).
    cost.tail = math.ceil(c_tile / min(mem.words_per_cycle, 1.0)) + mem.write_latency
    cost.cycles = cost.core_busy + cost.start + cost.tail + stall_total
    cost.beats = tiles * _beats_per_tile(spec, mode, k, n)
    cost.exact_beats = _exact_beats(spec, mode, rows, k, cols, n)
    cost.bytes_in = sum(size[a] for a in a_args) * n_ct + size["b"] * (n_rt if streaming else 1)
    cost.bytes_out = size["c"]
    cost.b_streaming_calls = int(streaming)
    cost.mults = _useful_mults(spec, mode, rows, k, cols, n)
    return cost


def _exact_beats(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None) -> float:
    """Beats without padding to tiles and groups: rows*cols*k / (R*C*step), x ceil(n/n_hw) sparse."""
    spg = _spg(spec, n) if mode == "SPARSE" else 1
    return rows * cols * k * spg / (spec.rows * spec.cols * _step(spec, mode))


def _useful_mults(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None) -> int:
    """Multiplies with a useful operand: n kept weights per group (SPARSE), every k (DENSE)."""
    kept = math.ceil(k / spec.m) * n if mode == "SPARSE" else k
    return rows * cols * kept

    return cost


def kernel_call(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, mem: MemoryModel = DEFAULT_MEMORY,
                b_reuse: bool = True, n: int | None = None) -> GemmCost:
    """Modelled cycles (with their breakdown) of ONE call of the RTL kernel in SPARSE or DENSE mode.

    C[rows][cols] = A[rows][k] . B[k][cols] within the spec's limits (one call), from ap_start to
    the last write response, on the memory ``mem`` (the MemoryModel the Verilator harness uses, so
    a measured call and this one compare like for like). Kernel launch / AXI-Lite overhead is not
    included. The returned GemmCost splits the cycles into core_busy (sim.cycles.core_cycles),
    start, tail and stalls. ``n``: a SPARSE call's runtime n (default the spec's n_hw): A carries
    ceil(n / n_hw) records per group and the core takes as many beats per group.
    """
    n = _check_call(spec, mode, rows, k, cols, n)
    if not isinstance(mem, MemoryModel):
        raise PerfError(f"mem must be a gen.memmodel.MemoryModel, got {type(mem).__name__}")
    c = _kernel_call(spec, mode, rows, k, cols, mem, b_reuse, n)
    out = GemmCost()
    out.add(c)
    out.loop_order = c.loop_order
    return out


def kernel_call_cycles(spec: ArchSpec, mode: str, rows: int, k: int, cols: int,
                       mem: MemoryModel = DEFAULT_MEMORY, b_reuse: bool = True, n: int | None = None) -> int:
    """Modelled cycles of one RTL-kernel call (see :func:`kernel_call` for the breakdown).

    ``b_reuse=True`` (default) is the RTL kernel as generated: B's column tile kept in sat_bbuf for
    its row tiles; ``False`` the kernel without that buffer (B streamed for every output tile)."""
    return kernel_call(spec, mode, rows, k, cols, mem, b_reuse, n).cycles


def _prune_layout(spec: ArchSpec, estimate_refused: bool) -> PruneShape:
    """The spec's PRUNE shape (gen.prune_layout); PerfError where the RTL kernel refuses PRUNE, unless
    ``estimate_refused``: then the "eq" rule (one beat per cycle and record, W read twice) stands in
    as an estimate of a PRUNE this kernel does not have (step_cost marks it, StepCost.prune_estimate)."""
    layout = prune_shape(spec)
    if layout is not None:
        return layout
    if not spec.sparse or not estimate_refused:
        raise PerfError(prune_refusal(spec))
    return PruneShape("eq", 1, Abi(spec).grouped_records(spec.rows).words_per_record)


@lru_cache(maxsize=4096)
def _prune_call(spec: ArchSpec, rows: int, k: int, mem: MemoryModel, n: int, layout: PruneShape) -> GemmCost:
    abi = Abi(spec)
    wb = abi.word_bytes
    size = abi.call_bytes("PRUNE", rows, k, 1, n)
    channels = _channels(spec, mem)
    w_words = size["a_val"] // wb
    outs = {a: size[a] // wb for a in ("ff_val", "ff_idx", "bp_val", "bp_idx")}
    wrates = {a: _write_rate(mem, min(READ_MAX_BURST, w)) for a, w in outs.items()}
    spg = _spg(spec, n)
    q, wpr = layout.q, layout.wpr
    # docs/RTL.md "PRUNE": FF beats rt_n x G (one grouped record of W, R rows x M positions, each);
    # BP beats kt_n x gb_n (BP lane tile kt of R columns of W, group gb of M rows of W).
    rt_n, g = -(-rows // spec.rows), -(-k // spec.m)
    kt_n, gb_n = -(-k // spec.rows), -(-rows // spec.m)
    # Beats of C groups (R lanes per record; R = C on every shape the kernel has: only the estimate
    # for a refusing R != C kernel differs, with its C lanes taking C groups per beat).
    # "blocks" (C >= R): one beat per record, on lanes 0..R-1 of the C lanes.
    if layout.shape == "blocks":
        ff_beats, bp_beats = rt_n * g, kt_n * gb_n
    else:
        ff_beats, bp_beats = -(-rt_n * g * spec.rows // spec.cols), -(-kt_n * gb_n * spec.rows // spec.cols)
    cost = GemmCost(launches=1, loop_order="rtl_kernel")
    # One core job over both passes (sim.cycles.prune_cycles of all groups, lane tiles padded to R
    # lanes as the ABI pads them; the core takes spg cycles per beat of C groups).
    cost.core_busy = _prune_core_cycles(spec, (ff_beats + bp_beats) * spec.cols, n)
    cost.beats = (ff_beats + bp_beats) * spg
    # The beat feed (docs/RTL.md "PRUNE", cycle rule): a beat waits for its record's words (WPR, at
    # one word per cycle from the read FIFO) when they exceed the core's spg cycles.
    #   FF: eq, tall: max(spg, WPR) per beat; wide: spg (two records per word).
    #   BP: eq: max(spg, WPR); wide: spg (one word, an R x R block, feeds q beats);
    #       tall: max(spg, live slots x WPR): the beat's q records come from the q row tiles
    #       gb*q .. gb*q+q-1; slots past W's last row tile are zero-filled (below).
    #       blocks: max(spg, q): one word of each of q records (WPR = q), q one-word reads; a slot
    #       past W's last column is not read but still takes its cycle.
    ff_feed = ff_beats * max(spg, wpr)
    # The first beat enters the core once its record's words are there (eq / tall: WPR cycles, the
    # core's formula counts 1): min(WPR, spg) - 1 more cycles where the core, not the feed, is the bound.
    first = min(1 if layout.shape == "wide" else wpr, spg) - 1
    if layout.shape == "wide":
        bp_feed = bp_beats * spg
        bp_words = kt_n * rt_n                       # every R x R block (one word) once
    elif layout.shape == "tall":
        live_last = rt_n - (gb_n - 1) * q            # row tiles in the last BP group
        # Measured (sat_1x16 and a 4 x 4, M = 16 spec; docs/PERF.md): a zero slot (a row tile past W)
        # costs no cycle of its own, except in the job's very last beat (one cycle each).
        last_beat = max(spg, live_last * wpr)
        bp_feed = kt_n * ((gb_n - 1) * max(spg, q * wpr) + last_beat)
        bp_feed += max(spg, live_last * wpr + (q - live_last)) - last_beat
        bp_words = kt_n * rt_n * wpr                 # record (rt, kt div q) once per kt: W read q times
    elif layout.shape == "blocks":                   # the rule's one place: sim.cycles.kernel_prune_beat_cycles
        from sim.cycles import kernel_prune_beat_cycles
        ff_feed, bp_feed = kernel_prune_beat_cycles(spec, rows, k, n)
        bp_words = gb_n * g                          # one word per live (group of rows, record column)
    else:
        bp_feed = bp_beats * max(spg, wpr)
        bp_words = w_words                           # every record once, one command each
    feed = ff_feed + bp_feed + first
    if feed > cost.beats:
        cost.stalls[f"W record feed ({layout.shape}, {wpr} word{'s' if wpr > 1 else ''} per record"
                    f"{f', {q} records per BP beat' if layout.shape == 'tall' else ''})"] = feed - cost.beats
    # FF pass: W in memory order, one read command; BP pass: W again, one command per record (per
    # word on "wide"). The read DMA runs ahead from the FF pass into the BP pass, so W's reads are
    # one stream (its first window arrives at full rate after the start, as for a GEMM's operands).
    # A pass waits when the memory's time for W and the copies exceeds the feed's cycles.
    rates = {"a_val": _read_rate(mem, min(w_words, READ_MAX_BURST)), **wrates}
    t, key = _memory_time({"a_val": w_words + bp_words, **outs}, rates, channels, mem)
    if key == "a_val master":
        t -= _read_stream_credit(mem, w_words + bp_words, min(w_words, READ_MAX_BURST))
    # The BP copy's last bursts leave after the last beat (a burst is requested once all its data
    # is buffered), then their write response: the tail. Where the binding resource also carries
    # them (a shared channel), those words are in the memory's time t as well: the passes wait only
    # for the rest of it.
    last = max((outs[a] - 1) % READ_MAX_BURST + 1 for a in ("bp_val", "bp_idx"))
    last_t = last / min(1.0, mem.words_per_cycle)
    if _involves(key, "bp_val") or _involves(key, "bp_idx"):
        t -= last_t
    mem_wait = math.ceil(t - feed - 1e-9) if t > feed else 0
    if mem_wait:
        cost.stalls[key] = mem_wait
    stall_total = sum(cost.stalls.values())
    cost.start = KERNEL_CALL_OVERHEAD + mem.read_latency
    cost.tail = math.ceil(last_t) + mem.write_latency + PRUNE_OUTPUT_PIPELINE
    if wpr > 1:
        cost.tail += PRUNE_MULTIWORD_OVERHEAD
    cost.cycles = cost.core_busy + cost.start + cost.tail + stall_total
    cost.bytes_in = (w_words + bp_words) * wb
    cost.bytes_out = sum(size[a] for a in ("ff_val", "ff_idx", "bp_val", "bp_idx"))
    return cost


def prune_call(spec: ArchSpec, rows: int, k: int, mem: MemoryModel = DEFAULT_MEMORY, n: int | None = None) -> GemmCost:
    """Modelled cycles of one PRUNE call of the RTL kernel on the dense master W[rows][k].

    One core job (``sim.cycles.prune_cycles`` of all groups) streams W (grouped records, R rows x M
    positions) through the core's C prune lanes once per copy: the FF copy (groups along k, lanes =
    rows; W in memory order), then the BP copy (groups along rows, lanes = columns; W read again and
    transposed in the RTL kernel by the spec's BP shape, gen.prune_layout: "eq", "wide" or "tall").
    Each beat takes the core's spg = ceil(n / n_hw) cycles or, where more, the cycles its record
    words need (docs/RTL.md "PRUNE", cycle rule); a pass also waits when the memory's time for W and
    the copies exceeds that. ``n``: the top-n kept per group (runtime N, default the spec's n_hw).
    A spec whose RTL kernel refuses PRUNE (no BP shape, e.g. rows != cols; the dense baseline)
    raises PerfError.
    """
    return _prune_call_checked(spec, rows, k, mem, n, estimate_refused=False)


def _prune_call_checked(spec: ArchSpec, rows: int, k: int, mem: MemoryModel, n: int | None,
                        estimate_refused: bool) -> GemmCost:
    layout = _prune_layout(spec, estimate_refused)
    n = _check_call(spec, "SPARSE", rows, k, 1, n)
    if not isinstance(mem, MemoryModel):
        raise PerfError(f"mem must be a gen.memmodel.MemoryModel, got {type(mem).__name__}")
    c = _prune_call(spec, rows, k, mem, n, layout)
    out = GemmCost()
    out.add(c)
    out.loop_order = c.loop_order
    return out


def prune_cost(spec: ArchSpec, rows: int, k: int, schedule: "Schedule" = RTL_KERNEL_SCHEDULE,
               n: int | None = None, *, estimate_refused: bool = False) -> GemmCost:
    """PRUNE of W[rows][k] at runtime ``n`` under ``schedule``: the RTL kernel's PRUNE call(s), or the HLS kernel's loops.

    On the RTL kernel a spec whose kernel refuses PRUNE raises PerfError, unless ``estimate_refused``
    (step_cost's network figures): then the "eq" rule stands in as an estimate (see ``_prune_layout``)."""
    if schedule.fetch == "hls_loops":
        return hls_prune_cost(spec, rows, k, n)
    if not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode")
    total = GemmCost()
    for rr, rn in _splits(rows, spec.max_dim):              # W beyond the call limits: several calls
        for kk, kn in _splits(k, spec.max_k):
            total.add(_prune_call_checked(spec, rr, kk, schedule.memory, n, estimate_refused), rn * kn)
    return total


def kernel_validation_calls(spec: ArchSpec) -> list[dict]:
    """Kernel calls, derived from the spec, that each exercise one term of the RTL-kernel model.

    For the comparison with the whole RTL kernel measured in the Verilator harness on the same
    MemoryModel: {"kind", "term", "mode", "rows", "k", "cols", "memory": MemoryModel, "n"}. PRUNE calls have
    cols = 0; ``n`` is the call's runtime n (None: the spec's n_hw). PRUNE calls only where the RTL kernel
    runs PRUNE (gen.prune_layout); the dense baseline gets its DENSE calls only.
    """
    r, c, m = spec.rows, spec.cols, spec.m
    deep = (spec.abuf_depth + 8) * m                     # a B column tile deeper than a buffer bank
    short = m * (spec.rows // spec.drain_rows + 2)      # a SPARSE tile as short as the drain floor
    lat = 2 * READ_OUTSTANDING * READ_MAX_BURST - READ_MAX_BURST   # in-flight words cover half the round trip
    calls = [
        ("compute", "compute bound: core term + first read, first B column tile, last write",
         "SPARSE", 2 * r, 64 * m, 3 * c, MemoryModel()),
        ("dense", "DENSE: one A and one B record every M/N cycles", "DENSE", 2 * r, 16 * m, 2 * c, MemoryModel()),
        ("edges", "edge tiles and a short last group (ABI padding)",
         "SPARSE", r + 1, 3 * m + 1, 3 * c - 1, MemoryModel()),
        ("b_streaming", "B streaming: column tile deeper than abuf_depth records", "SPARSE", r, deep, c, MemoryModel()),
        ("shared", "one shared channel: A + next B + C on one bank",
         "SPARSE", r, 64 * m, 3 * c, MemoryModel(banking="shared")),
        ("read_latency", "read latency beyond the in-flight words (B streaming)",
         "SPARSE", r, deep, c, MemoryModel(read_latency=lat)),
        ("write_latency", "write latency: one result burst per tile, WRITE_OUTSTANDING in flight",
         "SPARSE", 8 * r, short, c, MemoryModel(write_latency=128)),
        ("bandwidth", "half bandwidth per bank (B streaming)",
         "SPARSE", 2 * r, deep, c, MemoryModel(words_per_cycle=0.5)),
    ]
    calls = [(*call, None) for call in calls]
    nh = spec.n
    if prune_shape(spec) is not None:                    # the kernel runs PRUNE (gen.prune_layout)
        calls += [
            ("prune", "PRUNE: FF and BP passes of W through the prune lanes", "PRUNE", 4 * r, 16 * m, 0,
             MemoryModel(), None),
            ("prune_edges", "PRUNE of a W off the grid: short last group, last row tile (tall: last BP group) "
             "partly past W", "PRUNE", 2 * r + 1, 3 * m + 1, 0, MemoryModel(), None),
            ("prune_n", f"PRUNE at runtime n = {nh + 1}: spg = 2 records per group", "PRUNE", 4 * r, 16 * m, 0,
             MemoryModel(), nh + 1),
            ("prune_max_n", f"PRUNE at runtime n = M-1 = {m - 1}: spg = {-(-(m - 1) // nh)} records per group",
             "PRUNE", 4 * r, 16 * m, 0, MemoryModel(), m - 1),
            ("prune_bandwidth", "PRUNE on one shared channel at a quarter word per cycle: memory bound", "PRUNE",
             4 * r, 16 * m, 0, MemoryModel(words_per_cycle=0.25, banking="shared"), None),
        ]
        lay = prune_shape(spec)
        mixed = [n for n in range(nh + 1, m) if lay.wpr < _spg(spec, n) < lay.q * lay.wpr]
        if lay.shape == "tall" and mixed:            # FF pass core-bound, BP pass feed-bound (a known gap)
            calls.append(("prune_mixed", f"PRUNE at n = {mixed[0]}: FF pass core-bound, BP pass record-feed-bound",
                          "PRUNE", 4 * r, 16 * m, 0, MemoryModel(), mixed[0]))
    out, seen = [], set()
    for kind, term, mode, rows, k, cols, mem, n in calls:
        if not spec.sparse and mode != "DENSE":
            continue
        if n is not None and not nh < n < m:         # runtime n beyond the spec's, below M
            continue
        key = (mode, rows, k, cols, mem, n)
        if key in seen:                              # e.g. n_hw + 1 = M - 1
            continue
        seen.add(key)
        out.append({"kind": kind, "term": term, "mode": mode, "rows": rows, "k": min(k, spec.max_k), "cols": cols,
                    "memory": mem, "n": n})
    return out


# ---- the generated HLS kernel: trip-count cycles under stated II assumptions (not cycles) ------
# gen/hls_schedule.py (the HLS engineer's) counts the loops of the ABI v2 HLS kernel per call;
# tests/test_csim.py checks it against the C-simulated kernel's own loop counters. These wrappers
# only put its figures into GemmCost's breakdown; they never recount a loop.

def _hls_call(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None) -> GemmCost:
    """One GEMM call of the generated HLS kernel: gen.hls_schedule.gemm_schedule in GemmCost form.

    beats = array steps (the compute loop's trips), start = the first B tile on chip before step 0,
    tail = the last tile's drain; when another process (a read or feed loop) is busier than compute,
    the difference is booked as a stall of that loop. All of it is trip counts under
    hls_schedule.II_ASSUMPTIONS, not cycles.
    """
    from . import hls_schedule
    try:
        sch = hls_schedule.gemm_schedule(spec, mode, rows, k, cols, n)
    except hls_schedule.HlsScheduleError as e:
        raise PerfError(str(e)) from None
    abi = Abi(spec)
    t = sch.trips
    cost = GemmCost(launches=1, loop_order="hls_loops")
    cost.beats = cost.core_busy = sch.steps
    # start (first B tile on chip), tail (last drain) and B residency are the schedule's own figures.
    cost.start, cost.tail = sch.start, sch.tail
    cost.cycles = sch.cycles
    wait = sch.cycles - cost.beats - cost.start - cost.tail
    if wait:
        cost.stalls[f"{sch.bound} loop"] = wait
    cost.b_streaming_calls = sch.b_streaming_calls
    cost.exact_beats = _exact_beats(spec, mode, rows, k, cols, n)
    cost.bytes_in = (t["read_a"] + t["read_i"] + t["read_b"]) * abi.word_bytes
    cost.bytes_out = t["drain"] * abi.word_bytes
    cost.mults = _useful_mults(spec, mode, rows, k, cols, n)
    return cost


def hls_prune_cost(spec: ArchSpec, rows: int, k: int, n: int | None = None) -> GemmCost:
    """PRUNE of W[rows][k] on the generated HLS kernel: gen.hls_schedule.prune_schedule per call
    (trip counts under hls_schedule.II_ASSUMPTIONS, not cycles)."""
    from . import hls_schedule
    if not spec.sparse:
        raise PerfError(f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode")
    total = GemmCost()
    wb = spec.axi_bits // 8
    for rr, rn in _splits(rows, spec.max_dim):
        for kk, kn in _splits(k, spec.max_k):
            sch = hls_schedule.prune_schedule(spec, rr, kk, n)
            t = sch.trips
            one = GemmCost(cycles=sch.cycles, core_busy=sch.cycles, beats=sch.cycles, launches=1,
                           loop_order="hls_loops",
                           bytes_in=(t["ff_read"] + t["bp_read"]) * wb,
                           bytes_out=sum(t[x] for x in ("ff_write_val", "ff_write_idx", "bp_write_val",
                                                        "bp_write_idx")) * wb)
            total.add(one, rn * kn)
    return total


def _splits(length: int, limit: int) -> list[tuple[int, int]]:
    """Split ``length`` into launches of at most ``limit``: (size, count) pairs."""
    full, rest = divmod(length, limit)
    return [(s, c) for s, c in ((limit, full), (rest, 1)) if c and s]


def gemm_cost(spec: ArchSpec, mode: str, rows: int, k: int, cols: int,
              schedule: Schedule = BEST_SCHEDULE, n: int | None = None) -> GemmCost:
    """Modelled cycles of C[rows][cols] = A[rows][k] . B[k][cols] in ``mode``: the sum of its kernel calls.

    Dimensions above the spec's limits are split into several calls (k above ``max_k``: partial
    results summed by the host, outside this model). Each call is :func:`kernel_call` on
    ``schedule.memory`` (or, for ``fetch="hls_loops"``, gen/hls_schedule.py's trip counts of the HLS kernel).
    ``n``: a SPARSE GEMM's runtime n (kept weights per group of M; default the spec's n_hw).
    """
    for name, v in (("rows", rows), ("k", k), ("cols", cols)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise PerfError(f"GEMM {name} must be a positive integer, got {v!r}")
    total = GemmCost()
    for r, rn in _splits(rows, spec.max_dim):
        for kk, kn in _splits(k, spec.max_k):
            for c, cn in _splits(cols, spec.max_dim):
                if schedule.fetch == "hls_loops":
                    core_cycles(spec, mode, kk, 1, n)                    # same argument checks
                    one = _hls_call(spec, mode, r, kk, c, _job_n(spec, mode, n))
                else:
                    one = kernel_call(spec, mode, r, kk, c, schedule.memory, schedule.b_reuse, n)
                total.add(one, rn * kn * cn)
    return total


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
    # Why PRUNE is an estimate (the spec's RTL kernel refuses PRUNE: gen.prune_layout.prune_refusal), else None.
    prune_estimate: str | None = None

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
        """Where the modelled cycles go (the parts add up to ``cycles``): the core's streaming beats
        per pass, its fill/drain, the calls' exposed start (read latency, first B column tile) and
        end (last result write + write response), memory stalls, and PRUNE (all of its cycles)."""
        out = {p: 0 for p in PASSES}
        out.update(fill_drain=0, call_start_end=0, memory_stalls=0, PRUNE=0)
        for layer in self.layers:
            for p, g in layer.passes.items():
                out[p] += g.beats
                out["fill_drain"] += g.fill_drain
                out["call_start_end"] += g.start + g.tail
                out["memory_stalls"] += g.stall - g.start - g.tail
            out["PRUNE"] += layer.prune.cycles
        return out

    def stalls(self) -> dict[str, int]:
        """Modelled memory stalls of the GEMM calls by the resource the core waited for."""
        out: dict[str, int] = {}
        for layer in self.layers:
            for g in layer.passes.values():
                for key, v in g.stalls.items():
                    out[key] = out.get(key, 0) + v
        return out

    @property
    def exact_beats(self) -> float:
        """Streaming beats without padding to tiles and groups (rows*cols*k / (R*C*step) per GEMM)."""
        return sum(g.exact_beats for layer in self.layers for g in layer.passes.values())

    @property
    def traffic_bytes(self) -> int:
        """Modelled off-chip traffic of the step (reads + writes, ABI v2 sizes on the RTL kernel)."""
        return sum(g.bytes_in + g.bytes_out for layer in self.layers
                   for g in list(layer.passes.values()) + [layer.prune])

    @property
    def b_streaming_calls(self) -> int:
        return sum(g.b_streaming_calls for layer in self.layers for g in layer.passes.values())

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
    """Modelled cycles of one training step: every layer's FF, BP, WU (+ PRUNE of each weight layer for BDWP).

    Where the spec's RTL kernel refuses PRUNE (gen.prune_layout), BDWP's PRUNE cycles are an estimate by
    the "eq" rule and ``StepCost.prune_estimate`` says so.

    With ``schedule.fetch == "hls_loops"`` the "cycles" are the HLS kernel's trip-count cycles under
    gen.hls_schedule.II_ASSUMPTIONS (not cycles).
    """
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
            lc.prune.add(prune_cost(spec, layer.cout, layer.reduction, schedule, estimate_refused=True), layer.count)
        layers.append(lc)
    estimate = None
    if bdwp and schedule.fetch == "rtl_kernel" and any(lc.prune.launches for lc in layers):
        refusal = prune_refusal(spec)
        if refusal is not None:
            estimate = f"{refusal}; its PRUNE cycles are estimated by the \"eq\" rule"
    return StepCost(spec, network_name, bdwp, batch, layers, estimate)
