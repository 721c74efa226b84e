"""Schedule of the generated HLS kernel (hls/sat_kernel.cpp): its loops' trip counts per kernel call.

This counts the loops of the kernel the templates generate (hls_templates/hls/sat_kernel.cpp.j2),
one figure per loop that the kernel's C-simulation counts when it is built with
``-DSATGEN_TRIP_COUNT`` (``satgen_loop_trips``, names in ``satgen_trip_loop_names``);
tests/test_csim.py checks every figure against those counters. Its total is **trip-count cycles
under stated II assumptions**, not cycles: Vitis HLS is not installed here, so no schedule of the
synthesized kernel exists. The assumptions (docs/HLS.md says more):

* every ``PIPELINE II=1`` loop runs at II=1 (one iteration per cycle);
* the processes of a DATAFLOW region overlap completely (FIFOs deep enough to decouple them), so a
  region lasts as long as its busiest process, plus what must happen before the first or after the
  last array step (the first B tile on chip, the last tile's drain);
* each m_axi bundle moves one AXI word per cycle in bursts (its own DDR bank / HP port); memory
  latency, loop entry/exit, pipeline depths and the start of a burst are not counted.

GEMM (DATAFLOW): ``read_a`` / ``read_i`` (A values / indices: every row tile once per column
tile, one run of consecutive words), ``read_b`` (B tile of each column tile once when it fits the
on-chip buffer, else once per row tile), ``feed_b`` (the first B tile into a bank, then one line
per cycle out of the ping-pong banks while the next tile loads), ``compute`` (one array step per
cycle over all output tiles), ``drain`` (TILE_WORDS words per tile).
PRUNE (two DATAFLOW regions one after the other): FF (``ff_read``, ``ff_records`` one record of R
groups per cycle, ``ff_write_val/idx``), then BP staged (per band: ``bp_read`` / ``bp_stage``
one stage record per cycle, then ``bp_records`` one BP record per cycle; ``bp_write_val/idx``) or,
for W too tall for the stage, ``bp_direct`` (R x M single-element reads per BP record).

Runtime N: a SPARSE or PRUNE job keeping n per group (1 <= n <= M-1, regmap.json nm.runtime_n)
takes spg = ceil(n / n_hw) compressed records per group: ``compute`` runs G * spg steps per tile
(the group's B record replayed for spg steps), the A readers move G * spg records, PRUNE's
``ff_records`` / ``bp_records`` and writers spg records per group; W and B are read as at n_hw.

Entry points: :func:`gemm_schedule` / :func:`prune_schedule` (one kernel call, at a runtime ``n``),
:func:`gemm_cycles` (a GEMM of any size, split into calls as the host does) and
:func:`step_schedule` / :func:`step_speedup` (a training step of a network, lowered by
gen/workloads.py the way gen/perf.py's ``step_cost`` walks it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from hostpy.abi import Abi, Records

from .regmap import regmap
from .spec import ArchSpec
from .workloads import lower_network, network

__all__ = ["II_ASSUMPTIONS", "TRIP_LOOPS", "HlsSchedule", "gemm_schedule", "prune_schedule", "gemm_cycles",
           "step_schedule", "step_speedup", "HlsScheduleError"]

II_ASSUMPTIONS = ("every PIPELINE II=1 loop at II=1; DATAFLOW processes fully overlapped; one AXI word per "
                  "cycle per m_axi bundle; memory latency, loop entry/exit and pipeline depths not counted")

# The kernel's counted loops, in the order of satgen_trip_loop_names.
TRIP_LOOPS = ("read_a", "read_i", "read_b", "feed_b", "compute", "drain", "ff_read", "ff_records", "ff_write_val",
              "ff_write_idx", "bp_read", "bp_stage", "bp_records", "bp_direct", "bp_write_val", "bp_write_idx")


# hls/sat_kernel.cpp B_REUSE_MIN: B stays on chip only when a column tile replays at least this
# many lines (the ping-pong banks' write-to-read distance).
B_REUSE_MIN = 8


class HlsScheduleError(ValueError):
    """A shape or mode the kernel does not run (it would refuse the job)."""


@dataclass
class HlsSchedule:
    """One kernel call (or a sum of calls): loop trip counts and the trip-count cycles they imply."""

    cycles: int = 0                                    # trip-count cycles under II_ASSUMPTIONS
    trips: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TRIP_LOOPS, 0))
    steps: int = 0                                     # array steps (the compute loop): the streaming floor
    calls: int = 0
    bound: str = ""                                    # the loop / process that set the cycles
    start: int = 0                                     # GEMM: the first B tile on chip before step 0
    tail: int = 0                                      # GEMM: the last tile's drain after the last step
    b_streaming_calls: int = 0                         # GEMM calls whose B tile is re-read per row tile

    def add(self, other: "HlsSchedule", times: int = 1) -> None:
        self.cycles += other.cycles * times
        self.steps += other.steps * times
        self.calls += other.calls * times
        self.start += other.start * times
        self.tail += other.tail * times
        self.b_streaming_calls += other.b_streaming_calls * times
        for name, v in other.trips.items():
            self.trips[name] += v * times
        if other.bound and other.bound not in self.bound.split("+"):
            self.bound = "+".join(x for x in (self.bound, other.bound) if x)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _lines(rec: Records, count: int) -> tuple[int, int]:
    """(lines, words) of ``count`` records of one lane tile: a line is one word or one long record."""
    words = rec.words(count)
    wpl = 1 if rec.per_word else rec.words_per_record
    return words // wpl, words


def _rpl(rec: Records) -> int:
    return rec.per_word or 1


def _check(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None = None) -> int:
    """Refuse what the kernel refuses; returns the job's n (SPARSE/PRUNE: the runtime n, default the spec's)."""
    modes = ("SPARSE", "DENSE", "PRUNE") if spec.sparse else ("DENSE",)
    if mode not in modes:
        raise HlsScheduleError(f"{spec.name} has no mode {mode!r} (modes: {', '.join(modes)})")
    if not 1 <= rows <= spec.max_dim or not 1 <= k <= spec.max_k or (mode != "PRUNE" and not 1 <= cols <= spec.max_dim):
        raise HlsScheduleError(f"{mode} rows={rows} k={k} cols={cols} is outside the kernel's limits "
                               f"(max_dim {spec.max_dim}, max_k {spec.max_k}): status bad_size")
    if n is None:
        return spec.n
    n = int(n)
    if mode != "DENSE" and n not in _runtime_n(spec):
        raise HlsScheduleError(f"{mode} at n={n}: {spec.name}'s kernel runs n in "
                               f"{list(_runtime_n(spec))} (regmap.json nm.runtime_n): status bad_n")
    return n


@lru_cache(maxsize=64)
def _runtime_n(spec: ArchSpec) -> tuple[int, ...]:
    return tuple(regmap(spec)["nm"]["runtime_n"])


def gemm_schedule(spec: ArchSpec, mode: str, rows: int, k: int, cols: int, n: int | None = None) -> HlsSchedule:
    """One SPARSE or DENSE kernel call: trip counts of the GEMM loops and its trip-count cycles.

    ``n``: a SPARSE job's runtime n (default the spec's; DENSE ignores it). A group then takes
    spg = ceil(n / n_hw) compressed A records, one array step each, against the group's one B record.
    """
    job_n = _check(spec, mode, rows, k, cols, n)
    abi = Abi(spec)
    r, c, n_hw, m = spec.rows, spec.cols, spec.n, spec.m
    n_rt, n_ct, groups = _cdiv(rows, r), _cdiv(cols, c), _cdiv(k, m)
    dense = mode == "DENSE"
    spr = _cdiv(m, n_hw)
    a_recs = groups if dense else groups * abi.subrecords(job_n)
    steps = (groups - 1) * spr + _cdiv(k - (groups - 1) * m, n_hw) if dense else a_recs
    a_rec = abi.grouped_records(r) if dense else abi.value_records(r)
    _, a_words = _lines(a_rec, a_recs)
    i_words = 0 if dense else _lines(abi.index_records(r), a_recs)[1]
    b_rec = abi.grouped_records(c)
    b_lines, b_words = _lines(b_rec, groups)
    resident = b_lines <= _cdiv(spec.abuf_depth, _rpl(b_rec)) and n_rt * b_lines >= B_REUSE_MIN
    tiles = n_rt * n_ct
    t = dict.fromkeys(TRIP_LOOPS, 0)
    t["read_a"] = n_ct * n_rt * a_words
    t["read_i"] = n_ct * n_rt * i_words
    t["read_b"] = n_ct * (1 if resident else n_rt) * b_words
    t["feed_b"] = (b_lines if resident else 0) + tiles * b_lines
    t["compute"] = tiles * steps
    t["drain"] = tiles * abi.result_tile_words
    first_b = b_words if resident else 0               # the first B tile is on chip before step 0
    busy = {"read_a": t["read_a"], "read_i": t["read_i"], "read_b": t["read_b"], "feed_b": t["feed_b"],
            "compute": first_b + t["compute"], "drain": t["drain"]}
    bound = max(busy, key=lambda x: (busy[x], x == "compute"))
    cycles = busy[bound] + abi.result_tile_words        # + the last tile's drain
    return HlsSchedule(cycles=cycles, trips=t, steps=t["compute"], calls=1, bound=bound, start=first_b,
                       tail=abi.result_tile_words, b_streaming_calls=int(not resident))


def _bp_plan(spec: ArchSpec, rows: int, k: int) -> tuple[int, int, int, int]:
    """(band in W records, QR, QC, GA_RPL) of the BP stage, as hls/sat_kernel.cpp plans it (band 0: direct)."""
    abi = Abi(spec)
    r, m = spec.rows, spec.m
    ga, gb = abi.grouped_records(r), abi.grouped_records(spec.cols)
    staged = m % r == 0 or r % m == 0
    qr = m // r if m % r == 0 else 1
    qc = r // m if r % m == 0 else 1
    ga_rpl = _rpl(ga)
    align = math.lcm(qc, ga_rpl)
    stage_recs = spec.abuf_depth * gb.bits // ga.bits
    depth = max(stage_recs // (qr * qc), 1)
    per_bank = depth // _cdiv(_cdiv(rows, r), qr)
    band = per_bank * qc // align * align if staged else 0
    band = min(band, _cdiv(_cdiv(k, m), align) * align)
    return band, qr, qc, ga_rpl


def prune_schedule(spec: ArchSpec, rows: int, k: int, n: int | None = None) -> HlsSchedule:
    """One PRUNE kernel call on W[rows][k] keeping ``n`` per group (default the spec's): the FF pass,
    then the BP pass (staged or direct). Both copies take spg = ceil(n / n_hw) records per group,
    one per cycle (the W sweep and the BP stage are read once whatever n is)."""
    spg = Abi(spec).subrecords(_check(spec, "PRUNE", rows, k, 1, n))
    abi = Abi(spec)
    r, m = spec.rows, spec.m
    n_rt, g_k, g_r, n_t = _cdiv(rows, r), _cdiv(k, m), _cdiv(rows, m), _cdiv(k, r)
    ga, v, i = abi.grouped_records(r), abi.value_records(r), abi.index_records(r)
    t = dict.fromkeys(TRIP_LOOPS, 0)
    t["ff_read"] = n_rt * _lines(ga, g_k)[1]
    t["ff_records"] = n_rt * g_k * spg
    t["ff_write_val"] = n_rt * _lines(v, g_k * spg)[1]
    t["ff_write_idx"] = n_rt * _lines(i, g_k * spg)[1]
    ff = max(t[x] for x in ("ff_read", "ff_records", "ff_write_val", "ff_write_idx"))
    t["bp_write_val"] = n_t * _lines(v, g_r * spg)[1]
    t["bp_write_idx"] = n_t * _lines(i, g_r * spg)[1]
    band, qr, qc, ga_rpl = _bp_plan(spec, rows, k)
    ga_wpl = 1 if ga.per_word else ga.words_per_record
    if band:
        emit = 0
        tiles_per_band = band * m // r
        for b in range(_cdiv(g_k, band)):
            nrec = min(band, g_k - b * band)
            lines = _cdiv(nrec, ga_rpl)
            read, stage = n_rt * lines * ga_wpl, n_rt * lines * ga_rpl
            records = min(n_t - b * tiles_per_band, tiles_per_band) * g_r * spg
            t["bp_read"] += read
            t["bp_stage"] += stage
            t["bp_records"] += records
            emit += max(read, stage) + records              # stage (reader alongside), then emit
        bp, bp_name = emit, "bp_staged"
    else:
        t["bp_direct"] = n_t * g_r * r * m
        # + the spg records of each BP group, one per cycle after its R x M reads (not a counted loop)
        bp, bp_name = t["bp_direct"] + n_t * g_r * spg, "bp_direct"
    bp = max(bp, t["bp_write_val"], t["bp_write_idx"])
    return HlsSchedule(cycles=ff + bp, trips=t, steps=0, calls=1, bound=f"ff+{bp_name}")


def _splits(length: int, limit: int) -> list[tuple[int, int]]:
    full, rest = divmod(length, limit)
    return [(s, c) for s, c in ((limit, full), (rest, 1)) if c and s]


def gemm_cycles(spec: ArchSpec, mode: str, rows: int, k: int, cols: int) -> HlsSchedule:
    """A GEMM of any size: split into kernel calls within max_dim / max_k (k partial sums added by
    the host, outside the count), each counted by :func:`gemm_schedule`."""
    total = HlsSchedule()
    for rr, rn in _splits(rows, spec.max_dim):
        for kk, kn in _splits(k, spec.max_k):
            for cc, cn in _splits(cols, spec.max_dim):
                total.add(gemm_schedule(spec, mode, rr, kk, cc), rn * kn * cn)
    return total


def step_schedule(spec: ArchSpec, network_name: str, *, bdwp: bool, batch: int = 32, ragged: str = "dense",
                  dense_classifier: bool = True) -> dict[str, HlsSchedule]:
    """One training step on the generated HLS kernel: per pass (FF, BP, WU) and PRUNE, summed over the
    network's layers (the same lowering and PRUNE policy as gen/perf.py's step_cost)."""
    if bdwp and not spec.sparse:
        raise HlsScheduleError(f"{spec.name} is the dense baseline: BDWP needs a sparse architecture")
    out = {p: HlsSchedule() for p in ("FF", "BP", "WU", "PRUNE")}
    gemms = lower_network(network_name, batch=batch, m=spec.m, bdwp=bdwp, ragged=ragged,
                          dense_classifier=dense_classifier)
    sparse_layers = {g.layer for g in gemms if g.sparse}
    for g in gemms:
        out[g.pass_].add(gemm_cycles(spec, "SPARSE" if g.sparse else "DENSE", g.rows, g.k, g.cols), g.count)
    if bdwp:
        for layer in network(network_name):
            if layer.weights and layer.name in sparse_layers:
                for rr, rn in _splits(layer.cout, spec.max_dim):
                    for kk, kn in _splits(layer.reduction, spec.max_k):
                        out["PRUNE"].add(prune_schedule(spec, rr, kk), rn * kn * layer.count)
    return out


def step_speedup(spec: ArchSpec, network_name: str, batch: int = 32) -> dict:
    """BDWP step vs dense step on the same kernel, in trip-count cycles under II_ASSUMPTIONS, with
    the gap to the ideal 3 / (2N/M + 1) split into named causes (cycles of the BDWP step)."""
    bd = step_schedule(spec, network_name, bdwp=True, batch=batch)
    de = step_schedule(spec, network_name, bdwp=False, batch=batch)
    bd_total = sum(s.cycles for s in bd.values())
    de_total = sum(s.cycles for s in de.values())
    gemm_steps = sum(bd[p].steps for p in ("FF", "BP", "WU"))
    return {
        "figure": "trip-count cycles under stated II assumptions (not cycles)",
        "assumptions": II_ASSUMPTIONS,
        "bdwp_trip_cycles": bd_total,
        "dense_trip_cycles": de_total,
        "speedup": de_total / bd_total,
        "ideal": spec.ideal_step_speedup,
        "bdwp_by_pass": {p: s.cycles for p, s in bd.items()},
        "dense_by_pass": {p: s.cycles for p, s in de.items() if p != "PRUNE"},
        # Where the BDWP step's cycles go beyond the array's streaming steps.
        "bdwp_gap": {"array_steps": gemm_steps,
                     "prune": bd["PRUNE"].cycles,
                     "non_compute": sum(bd[p].cycles for p in ("FF", "BP", "WU")) - gemm_steps},
    }


if __name__ == "__main__":     # python -m gen.hls_schedule [arch] [batch]
    import json
    import sys

    from .spec import preset
    arch = preset(sys.argv[1] if len(sys.argv) > 1 else "sat_2x8")
    b = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    for net in ("resnet18_cifar", "vgg16_cifar", "deit_s"):
        print(net, json.dumps(step_speedup(arch, net, b), indent=1))
