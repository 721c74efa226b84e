"""cocotb testbench of sat_core: whole GEMMs and PRUNE jobs through the AXI4-Stream ports, bit-exact vs hostpy.

Every functional test runs with random idle cycles on both input streams and random
backpressure on the result stream; the cycle measurement runs without stalls. Environment:
SATGEN_OUT (the generated output directory), SATGEN_CYCLES_GEMM ("m,k,n") and SATGEN_CYCLES_OUT
(a JSON file) for test_cycle_measurement, SATGEN_HEAVY=1 for the larger regression of `make sim`.
"""
from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

from gen.regmap import MODES
from hostpy import golden
from hostpy.nm import NMCompressed, compress
from sim.beats import GemmJob, PruneJob, dense_job, prune_job, sparse_job
from sim.cycles import core_cycles, prune_cycles
from sim.tb_common import CLOCK_NS, cases, pulse_reset, quiet_logs, random_pauses, rng_for, signed_range, spec_under_test, start_clock


class CoreTB:
    """Drives sat_core: control pins, two stream sources, one result sink, a handshake monitor."""

    def __init__(self, dut, name: str):
        self.dut = dut
        self.spec = spec_under_test()
        self.rng = rng_for(name)
        start_clock(dut)
        self.w_src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_w"), dut.clk, dut.rst)
        self.a_src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_a"), dut.clk, dut.rst)
        self.c_sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_c"), dut.clk, dut.rst)
        # m_axis_p (compressed groups of mode PRUNE) exists on sparse cores only.
        self.p_sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_p"), dut.clk, dut.rst) \
            if self.spec.sparse else None
        self.sinks = [self.c_sink] + ([self.p_sink] if self.p_sink else [])
        quiet_logs(self.w_src, self.a_src, *self.sinks)
        dut.start.value = 0
        dut.mode.value = 0
        dut.k_len.value = 0
        dut.n_tiles.value = 0
        if self.spec.sparse:
            dut.n_keep.value = self.spec.n      # runtime N (kept per group): covered end to end by tb_kernel
        self.cycle = 0
        self.first_in = None          # cycle of the first input handshake since clear_marks()
        self.last_out = None          # cycle of the latest result handshake
        self.start_errors = 0
        cocotb.start_soon(self._monitor())

    @property
    def modes(self) -> list[str]:
        return ["SPARSE", "DENSE"] if self.spec.sparse else ["DENSE"]

    async def _monitor(self):
        d = self.dut
        while True:
            await RisingEdge(d.clk)
            self.cycle += 1
            await ReadOnly()          # settled values of this cycle: they are sampled at the next edge
            # GEMM beats take both input streams, PRUNE beats only s_axis_a.
            if d.s_axis_a_tvalid.value == 1 and d.s_axis_a_tready.value == 1 and self.first_in is None:
                self.first_in = self.cycle
            if d.m_axis_c_tvalid.value == 1 and d.m_axis_c_tready.value == 1:
                self.last_out = self.cycle
            if self.p_sink and d.m_axis_p_tvalid.value == 1 and d.m_axis_p_tready.value == 1:
                self.last_out = self.cycle
            if d.start_error.value == 1:
                self.start_errors += 1

    def clear_marks(self):
        self.first_in = self.last_out = None

    def set_stalls(self, p_idle: float, p_backpressure: float):
        self.w_src.set_pause_generator(random_pauses(self.rng, p_idle))
        self.a_src.set_pause_generator(random_pauses(self.rng, p_idle))
        for sink in self.sinks:
            sink.set_pause_generator(random_pauses(self.rng, p_backpressure))

    def random_stalls(self):
        self.set_stalls(float(self.rng.uniform(0.1, 0.5)), float(self.rng.uniform(0.1, 0.5)))

    async def reset(self):
        # Clear before and after: a beat sampled at the edge the reset is applied may still
        # complete a frame in the sink.
        for q in (self.w_src, self.a_src, *self.sinks):
            q.clear()
        await pulse_reset(self.dut)
        for q in (self.w_src, self.a_src, *self.sinks):
            q.clear()

    async def start(self, mode_code: int, k: int, tiles: int, n: int | None = None):
        d = self.dut
        if self.spec.sparse:
            d.n_keep.value = self.spec.n if n is None else n
        while d.busy.value == 1:
            await RisingEdge(d.clk)
        d.mode.value = mode_code
        d.k_len.value = k
        d.n_tiles.value = tiles
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0

    async def run_job(self, job: GemmJob) -> np.ndarray:
        await self.start(job.mode_code, job.k, len(job.tiles))
        for wf, af in zip(job.w_frames, job.a_frames):
            await self.w_src.send(wf)
            await self.a_src.send(af)
        # Generous bound (stalls at most halve the rate): a hang fails instead of running forever.
        limit_cycles = 1000 + 20 * len(job.tiles) * (job.beats_per_tile + self.spec.rows)
        frames = []
        for _ in job.tiles:
            frame = await with_timeout(self.c_sink.recv(), limit_cycles * CLOCK_NS, "ns")
            frames.append(bytes(frame.tdata))
        while self.dut.busy.value == 1:
            await RisingEdge(self.dut.clk)
        return job.assemble(frames)

    async def run_prune(self, job: PruneJob) -> bytes:
        """One PRUNE job (n_tiles = its beats, k_len ignored): the whole m_axis_p frame."""
        await self.start(MODES["PRUNE"], 0, job.beats)
        await self.a_src.send(job.a_frame)
        limit_cycles = 1000 + 20 * job.beats
        frame = await with_timeout(self.p_sink.recv(), limit_cycles * CLOCK_NS, "ns")
        while self.dut.busy.value == 1:
            await RisingEdge(self.dut.clk)
        return bytes(frame.tdata)

    async def check_prune(self, w: np.ndarray, what: str) -> list[PruneJob]:
        """Both copies of W (FF and BP order) through PRUNE, every group bit-exact vs golden.prune."""
        s = self.spec
        w_ff, w_bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
        jobs = [prune_job(s, w, "FF", w_ff, self.rng), prune_job(s, w, "BP", w_bp, self.rng)]
        for job in jobs:
            job.check(await self.run_prune(job))
            self.dut._log.info("%s: PRUNE %s order of W %s, %d groups bit-exact", what, job.order, w.shape,
                               job.groups)
        return jobs

    def random_operand(self, shape, kind: str = "random") -> np.ndarray:
        lo, hi = signed_range(self.spec.data_bits)
        if kind == "tied":
            # Equal magnitudes everywhere, and -2^(d-1) next to 2^(d-1)-1 (one apart in magnitude).
            v = int(self.rng.integers(1, hi + 1))
            return self.rng.choice([lo, hi, -hi, v, -v, 0], size=shape).astype(np.int64)
        if kind == "zero":
            return np.zeros(shape, dtype=np.int64)
        if kind == "max":
            return np.full(shape, hi, dtype=np.int64)
        if kind == "min":
            return np.full(shape, lo, dtype=np.int64)
        if kind == "edges":
            return self.rng.choice([lo, lo + 1, -1, 0, 1, hi - 1, hi], size=shape).astype(np.int64)
        return self.rng.integers(lo, hi + 1, size=shape).astype(np.int64)

    def compressed(self, a: np.ndarray) -> NMCompressed:
        return compress(a.astype(np.int8 if self.spec.mem_data_bits == 8 else np.int16), self.spec.n, self.spec.m,
                        axis=1)

    def job(self, mode: str, a: np.ndarray, b: np.ndarray) -> GemmJob:
        if mode == "SPARSE":
            return sparse_job(self.spec, self.compressed(a), b, self.rng)
        return dense_job(self.spec, a, b, self.rng)

    async def check(self, job: GemmJob, what: str):
        got = await self.run_job(job)
        if not np.array_equal(got, job.expected):
            bad = np.argwhere(got != job.expected)
            r, c = bad[0]
            raise AssertionError(f"{what}: {len(bad)} wrong results, first C[{r}][{c}] = {got[r, c]}, "
                                 f"expected {job.expected[r, c]} ({job.mode}, shape {job.shape}, k {job.k})")
        self.dut._log.info("%s: %s %s k=%d, %d tiles bit-exact", what, job.mode, job.shape, job.k, len(job.tiles))


def _shapes(tb: CoreTB, count: int):
    s = tb.spec
    for _ in range(count):
        rows = int(tb.rng.integers(1, 2 * s.rows + 1))
        cols = int(tb.rng.integers(1, 2 * s.cols + 1))
        k = int(tb.rng.integers(1, 6 * s.m + 1))           # often not a multiple of M or N
        yield rows, k, cols


@cocotb.test()
async def test_training_passes(dut):
    """FF (sparse, W pruned along Cin), BP (sparse, W pruned separately along Cout), WU (dense)."""
    tb = CoreTB(dut, "test_training_passes")
    await tb.reset()
    tb.random_stalls()
    s = tb.spec
    for cout, cin, batch in list(_shapes(tb, cases(2))):
        w = tb.random_operand((cout, cin))
        x = tb.random_operand((cin, batch))
        dy = tb.random_operand((cout, batch))
        if s.sparse:
            w_ff, w_bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
            job = sparse_job(s, w_ff, x, tb.rng)
            assert np.array_equal(job.expected, golden.ff(w_ff, x, data_bits=s.data_bits, acc_bits=s.acc_bits))
            await tb.check(job, "FF")
            lanes = NMCompressed(values=w_bp.values, indices=w_bp.indices, n=s.n, m=s.m, axis=1,
                                 shape=(w_bp.shape[1], w_bp.shape[0]))      # W^T compressed along Cout
            job = sparse_job(s, lanes, dy, tb.rng)
            assert np.array_equal(job.expected, golden.bp(w_bp, dy, data_bits=s.data_bits, acc_bits=s.acc_bits))
            await tb.check(job, "BP")
        else:
            job = dense_job(s, w, x, tb.rng)
            await tb.check(job, "FF (dense baseline)")
        job = dense_job(s, dy, x.T.copy(), tb.rng)
        assert np.array_equal(job.expected, golden.wu(dy, x, data_bits=s.data_bits, acc_bits=s.acc_bits))
        await tb.check(job, "WU")


@cocotb.test()
async def test_random_tiles_back_to_back(dut):
    """Random shapes in every mode, K often not a multiple of M or N, jobs started back to back."""
    tb = CoreTB(dut, "test_random_tiles_back_to_back")
    await tb.reset()
    tb.random_stalls()
    for i, (rows, k, cols) in enumerate(_shapes(tb, cases(4))):
        for mode in tb.modes:
            a = tb.random_operand((rows, k), "edges" if i % 2 else "random")
            b = tb.random_operand((k, cols), "edges" if i % 3 == 0 else "random")
            await tb.check(tb.job(mode, a, b), f"random #{i}")


@cocotb.test()
async def test_extremes(dut):
    """Max/min operands, and one tile at K = max_k with the largest product everywhere: the
    largest sum the spec promises to hold (the accumulator's limit for this spec)."""
    tb = CoreTB(dut, "test_extremes")
    await tb.reset()
    tb.random_stalls()
    s = tb.spec
    k = 3 * s.m + 1
    for ka, kb in (("max", "max"), ("min", "min"), ("max", "min"), ("min", "max")):
        for mode in tb.modes:
            a = tb.random_operand((s.rows, k), ka)
            b = tb.random_operand((k, s.cols), kb)
            await tb.check(tb.job(mode, a, b), f"extreme {ka}x{kb}")
    tb.set_stalls(0.05, 0.05)
    k = s.max_k
    for mode in tb.modes:
        a = tb.random_operand((s.rows, k), "min")
        b = tb.random_operand((k, s.cols), "min")
        job = tb.job(mode, a, b)
        await tb.check(job, f"K = max_k = {k}")


@cocotb.test()
async def test_reset_mid_job(dut):
    """Reset while a job is half streamed, then a correct job; also refused starts."""
    tb = CoreTB(dut, "test_reset_mid_job")
    await tb.reset()
    tb.random_stalls()
    s = tb.spec
    for mode in tb.modes:
        rows, k, cols = 2 * s.rows, 4 * s.m + 3, 2 * s.cols
        job = tb.job(mode, tb.random_operand((rows, k)), tb.random_operand((k, cols)))
        await tb.start(job.mode_code, job.k, len(job.tiles))
        for wf, af in zip(job.w_frames, job.a_frames):
            await tb.w_src.send(wf)
            await tb.a_src.send(af)
        for _ in range(int(tb.rng.integers(job.beats_per_tile, 3 * job.beats_per_tile + s.rows))):
            await RisingEdge(dut.clk)
        assert dut.busy.value == 1, "the job should still be running when reset hits"
        await tb.reset()
        assert dut.busy.value == 0 and dut.m_axis_c_tvalid.value == 0
        job = tb.job(mode, tb.random_operand((rows, k)), tb.random_operand((k, cols)))
        await tb.check(job, "after reset")
    # Refused starts: unsupported mode, K = 0, K > max_k, no tiles. Nothing may start.
    supported = tb.modes + (["PRUNE"] if s.sparse else [])
    bad_modes = [v for name, v in MODES.items() if name not in supported] + [(1 << len(dut.mode)) - 1]
    cases = [(MODES["DENSE"], 0, 1, None), (MODES["DENSE"], 4, 0, None)] + [(m, 4, 1, None) for m in bad_modes]
    if s.sparse:
        cases.append((MODES["PRUNE"], 4, 0, None))    # a PRUNE job of no beats
        # runtime N: n_keep outside 1..M-1 in SPARSE or PRUNE
        cases += [(MODES["SPARSE"], 4, 1, 0), (MODES["SPARSE"], 4, 1, s.m), (MODES["PRUNE"], 4, 1, 0)]
    if s.max_k + 1 < 2 ** len(dut.k_len):
        cases.append((MODES["DENSE"], s.max_k + 1, 1, None))
    for mode_code, k, tiles, n in cases:
        before = tb.start_errors
        await tb.start(mode_code, k, tiles, n)
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert dut.busy.value == 0, f"start(mode={mode_code}, k={k}, tiles={tiles}) must be refused"
        await RisingEdge(dut.clk)
        assert tb.start_errors == before + 1, f"start_error must pulse once for mode={mode_code}, k={k}, tiles={tiles}"
    job = tb.job(tb.modes[0], tb.random_operand((s.rows, 5)), tb.random_operand((5, s.cols)))
    await tb.check(job, "after refused starts")


@cocotb.test()
async def test_prune(dut):
    """Mode PRUNE: both copies of random, tied and all-zero W bit-exact vs hostpy.golden.prune under
    random idle/backpressure, jobs back to back between GEMM jobs; the dense baseline refuses it."""
    tb = CoreTB(dut, "test_prune")
    await tb.reset()
    tb.random_stalls()
    s = tb.spec
    if not s.sparse:
        before = tb.start_errors
        await tb.start(MODES["PRUNE"], 4, 1)
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert dut.busy.value == 0, "the dense baseline must refuse PRUNE"
        await RisingEdge(dut.clk)
        assert tb.start_errors == before + 1, "start_error must pulse for PRUNE on the dense baseline"
        return
    kinds = ["random", "tied", "zero", "edges"]
    for i in range(cases(2)):
        for kind in kinds:
            # Cout and Cin often not multiples of M (short last groups) or of C (spare lanes).
            cout = int(tb.rng.integers(1, 3 * s.m + 1))
            cin = int(tb.rng.integers(1, 3 * s.m + 1))
            w = tb.random_operand((cout, cin), kind)
            await tb.check_prune(w, f"{kind} #{i}")
    # Back to back with GEMM jobs: PRUNE between two GEMMs leaves both bit-exact.
    for mode in tb.modes:
        rows, k, cols = 2 * s.rows - 1, 2 * s.m + 3, s.cols + 1
        await tb.check(tb.job(mode, tb.random_operand((rows, k)), tb.random_operand((k, cols))), "before PRUNE")
        await tb.check_prune(tb.random_operand((s.m + 1, 2 * s.m)), "between GEMMs")
        await tb.check(tb.job(mode, tb.random_operand((rows, k)), tb.random_operand((k, cols))), "after PRUNE")


@cocotb.test()
async def test_prune_cycles(dut):
    """Without stalls a PRUNE job takes sim/cycles.py:prune_cycles (first input to last output beat)."""
    tb = CoreTB(dut, "test_prune_cycles")
    s = tb.spec
    if not s.sparse:
        # No PRUNE mode (test_prune checks the refusal), so no compressed-group stream either.
        assert not hasattr(dut, "m_axis_p_tvalid"), "the dense baseline must not have m_axis_p"
        return
    await tb.reset()
    tb.set_stalls(0.0, 0.0)
    for cout, cin in ((1, 1), (s.m, s.m), (2 * s.m + 1, 3 * s.m - 1), (4 * s.m, 8 * s.m)):
        w = tb.random_operand((cout, cin))
        w_ff, _ = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
        job = prune_job(s, w, "FF", w_ff, tb.rng)
        tb.clear_marks()
        job.check(await tb.run_prune(job))
        measured = tb.last_out - tb.first_in + 1
        want = prune_cycles(s, job.groups)
        assert measured == want, f"PRUNE of W {w.shape} ({job.groups} groups): measured {measured}, formula {want}"
        dut._log.info("cycles PRUNE W %s, %d groups: %d (= formula)", w.shape, job.groups, measured)


async def _measure(tb: CoreTB, job: GemmJob) -> int:
    tb.clear_marks()
    got = await tb.run_job(job)
    assert np.array_equal(got, job.expected), f"{job.mode} measurement GEMM is not bit-exact"
    return tb.last_out - tb.first_in + 1


@cocotb.test()
async def test_cycles_match_formula(dut):
    """Without stalls the measured cycles equal sim/cycles.py:core_cycles for several shapes."""
    tb = CoreTB(dut, "test_cycles_match_formula")
    await tb.reset()
    tb.set_stalls(0.0, 0.0)
    s = tb.spec
    shapes = [(s.rows, 1, s.cols), (s.rows, s.m * (s.rows + 3), s.cols), (2 * s.rows, 3 * s.m + 1, 2 * s.cols),
              (3 * s.rows - 1, s.m * s.rows, s.cols + 1), (s.rows + 1, 2 * s.m * (s.rows + 2) + 5, 2 * s.cols)]
    for rows, k, cols in shapes:
        for mode in tb.modes:
            job = tb.job(mode, tb.random_operand((rows, k)), tb.random_operand((k, cols)))
            measured = await _measure(tb, job)
            want = core_cycles(s, mode, k, len(job.tiles))
            assert measured == want, (f"{mode} {rows}x{k}x{cols} ({len(job.tiles)} tiles): measured {measured} "
                                      f"cycles, formula {want}")
            dut._log.info("cycles %s %dx%dx%d: %d (= formula)", mode, rows, k, cols, measured)


@cocotb.test()
async def test_cycle_measurement(dut):
    """The benchmark GEMM in sparse and dense mode, no stalls; writes SATGEN_CYCLES_OUT."""
    out = os.environ.get("SATGEN_CYCLES_OUT")
    gemm = os.environ.get("SATGEN_CYCLES_GEMM")
    if not out or not gemm:
        raise AssertionError("SATGEN_CYCLES_OUT and SATGEN_CYCLES_GEMM must be set for this test (sim.run sets them)")
    m, k, n = (int(x) for x in gemm.split(","))
    tb = CoreTB(dut, "test_cycle_measurement")
    await tb.reset()
    tb.set_stalls(0.0, 0.0)
    s = tb.spec
    a = tb.random_operand((m, k))
    b = tb.random_operand((k, n))
    if s.sparse:
        sparse_cycles = await _measure(tb, tb.job("SPARSE", a, b))
        how = "sparse mode on the compressed A"
    else:
        # The dense baseline runs a sparse GEMM as the dense GEMM of the decompressed (pruned) A.
        from hostpy.nm import decompress
        pruned = decompress(compress(a.astype(np.int8 if s.mem_data_bits == 8 else np.int16), s.n, s.m, axis=1))
        sparse_cycles = await _measure(tb, tb.job("DENSE", pruned.astype(np.int64), b))
        how = "dense baseline: the pruned A decompressed, in dense mode"
    dense_job_ = tb.job("DENSE", a, b)
    dense_cycles = await _measure(tb, dense_job_)
    tiles = len(dense_job_.tiles)
    report = {
        "arch": s.name,
        "gemm": [m, k, n],
        "tiles": tiles,
        "sparse_cycles": sparse_cycles,
        "dense_cycles": dense_cycles,
        "ratio": dense_cycles / sparse_cycles,
        "ideal_ratio": (s.m / s.n) if s.sparse else 1.0,
        "sparse_formula": core_cycles(s, "SPARSE", k, tiles) if s.sparse else core_cycles(s, "DENSE", k, tiles),
        "dense_formula": core_cycles(s, "DENSE", k, tiles),
        "sparse_how": how,
    }
    with open(out, "w") as fh:
        json.dump(report, fh, indent=2, sort_keys=True)
        fh.write("\n")
    dut._log.info("cycles: %s", report)
