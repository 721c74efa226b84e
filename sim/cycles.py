"""The exact cycle count of the generated RTL core (sat_core), as a function of the spec.

Counted from the cycle of the first input beat to the cycle of the last result beat, both
included, with streams that never stall the core (docs/RTL.md derives it). Per tile the core takes
B = ceil(K / step) beats (step = M sparse, N dense); a SPARSE job at runtime N keeping n per group
takes spg = ceil(n / N) beats per group (hostpy.abi Abi.subrecords), B = ceil(K / M) * spg. The shadow bank drains in
E = R / spec.drain_rows result beats (drain_rows rows per beat). A tile's last beat may enter
only when the shadow bank is free: the previous tile's bank load (1 cycle) plus its E-beat drain
must be over, so consecutive tiles are max(B, E + 2) cycles apart. The last tile then needs
1 cycle to reach the accumulators and E cycles to drain:

    cycles = B + (tiles - 1) * max(B, E + 2) + E + 1

The cocotb core testbench measures this (sim/tb_core.py, reports/cycles.json) and
tests/test_rtl.py checks measured == formula; gen/perf.py builds on this function.

Mode PRUNE streams ceil(groups / C) beats of C dense groups through C sat_prune lanes, one beat
per cycle; each beat leaves PRUNE_STAGES cycles after it entered:

    prune_cycles = ceil(groups / C) + PRUNE_STAGES

At runtime n every group leaves as spg records of N slots, one per cycle (the input waits), so

    prune_cycles = ceil(groups / C) * spg + PRUNE_STAGES

The RTL kernel's PRUNE on the "blocks" shape (C >= R = q x M, one M x M block of W per AXI word;
docs/RTL.md "PRUNE"): every core beat is collected in a block register of q slots, one slot per
cycle (a zero slot past W's last record column, not read, takes its cycle too), so a beat takes
max(spg, q) cycles: FF rt_n x G beats, BP kt_n x gb_n beats (`kernel_prune_beat_cycles`); the kernel
adds a fixed overhead measured in docs/RTL.md.
"""
from __future__ import annotations

from gen.spec import ArchSpec
from hostpy.abi import Abi

__all__ = ["subrecords", "beats_per_tile", "result_beats_per_tile", "core_cycles", "prune_beats", "prune_cycles", "PRUNE_STAGES",
           "kernel_prune_beat_cycles"]

# Pipeline stages of sat_prune (magnitudes, ranks, compaction): an RTL structure, not a spec field.
PRUNE_STAGES = 3


def subrecords(spec: ArchSpec, mode: str, n: int | None) -> int:
    """Core beats per group: spg = ceil(n / N) in SPARSE and PRUNE at runtime ``n`` (None: the spec's n), 1 in DENSE."""
    if mode == "DENSE":
        return 1
    if n is not None and not 1 <= n < spec.m:
        raise ValueError(f"n must be in [1, {spec.m - 1}] (nm.runtime_n), got {n}")
    return Abi(spec).subrecords(n)


def beats_per_tile(spec: ArchSpec, mode: str, k: int, n: int | None = None) -> int:
    """Input beats per output tile: ceil(K/M) * spg in SPARSE mode (spg = ceil(n/N) at runtime ``n``), ceil(K/N) in DENSE mode."""
    if mode not in ("SPARSE", "DENSE"):
        raise ValueError(f"mode must be 'SPARSE' or 'DENSE', got {mode!r}")
    if mode == "SPARSE" and not spec.sparse:
        raise ValueError(f"{spec.name} is the dense baseline: it has no SPARSE mode")
    if not 1 <= k <= spec.max_k:
        raise ValueError(f"k must be in [1, {spec.max_k}], got {k}")
    step = spec.m if mode == "SPARSE" else spec.n
    return -(-k // step) * subrecords(spec, mode, n)


def result_beats_per_tile(spec: ArchSpec) -> int:
    """Result beats per output tile: the R rows, spec.drain_rows per beat."""
    return spec.rows // spec.drain_rows


def core_cycles(spec: ArchSpec, mode: str, k: int, tiles: int, n: int | None = None) -> int:
    """Cycles from the first input beat to the last result beat of a job of ``tiles`` output tiles
    (SPARSE at runtime ``n``: None = the spec's n)."""
    if tiles < 1:
        raise ValueError(f"tiles must be >= 1, got {tiles}")
    b = beats_per_tile(spec, mode, k, n)
    e = result_beats_per_tile(spec)
    # Last beat at cycle t: products at t, shadow bank loads at the end of t+1, result beats leave
    # at t+2 .. t+E+1; the bank is busy during t+1 .. t+E+1, so the next last beat waits for t+E+2.
    return b + (tiles - 1) * max(b, e + 2) + e + 1


def prune_beats(spec: ArchSpec, groups: int) -> int:
    """Beats of a PRUNE job over ``groups`` groups of M: C groups (one per column lane) per beat."""
    if not spec.sparse:
        raise ValueError(f"{spec.name} is the dense baseline: it has no PRUNE mode")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return -(-groups // spec.cols)


def prune_cycles(spec: ArchSpec, groups: int, n: int | None = None) -> int:
    """Cycles from the first input beat to the last m_axis_p beat of a PRUNE job over ``groups`` groups
    keeping ``n`` per group (None: the spec's n): spg output beats per input beat."""
    return prune_beats(spec, groups) * subrecords(spec, "PRUNE", n) + PRUNE_STAGES


def kernel_prune_beat_cycles(spec: ArchSpec, rows: int, k: int, n: int | None = None) -> tuple[int, int]:
    """(FF, BP) cycles of the RTL kernel's PRUNE of W[rows, k] at runtime ``n`` on the "blocks" shape
    (hls_templates/rtl/_sat_layout.j2 K_BPX), without stalls and without the fixed per-job overhead:
    FF rt_n x G beats and BP kt_n x gb_n beats, each max(spg, q) cycles (q slots of the block register)."""
    from gen.prune_layout import prune_bp_shape      # the shape and its q, read from the template
    shape, q = prune_bp_shape(spec) or (None, 0)
    if shape != "blocks":
        raise ValueError(f"{spec.name}: the RTL kernel's PRUNE shape is {shape!r}, not 'blocks'")
    if rows < 1 or k < 1:
        raise ValueError(f"PRUNE needs rows, k >= 1, got {rows} x {k}")
    spg = subrecords(spec, "PRUNE", n)
    g = -(-k // spec.m)
    rt_n, kt_n, gb_n = -(-rows // spec.rows), -(-k // spec.rows), -(-rows // spec.m)
    return rt_n * g * max(spg, q), kt_n * gb_n * max(spg, q)
