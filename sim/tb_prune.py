"""cocotb testbench of sat_prune: every kept value and index bit-exact vs hostpy.nm.compress.

Random idle cycles on the input stream and random backpressure on the output stream in every
test; groups: random, tied magnitudes (including -2^(D-1) against 2^(D-1)-1), fewer than N
non-zeros, all zero, extremes, and a full-rate run without stalls (one group per cycle).
Runtime N: the `n` input keeps n of M (1..M-1); a group leaves as ceil(n / N) records of N slots
(hostpy.abi Abi.subrecords), slots past n value 0 / index 0; every n is checked, and the rate
(ceil(n / N) cycles per group without stalls).
"""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamSink, AxiStreamSource

from hostpy.abi import Abi
from hostpy.nm import compress
from sim.tb_common import CLOCK_NS, cases, quiet_logs, pulse_reset, random_pauses, rng_for, signed_range, spec_under_test, start_clock


class PruneTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.spec = spec_under_test()
        self.rng = rng_for(name)
        start_clock(dut)
        self.src = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst)
        quiet_logs(self.src, self.sink)
        self.dtype = np.int8 if self.spec.mem_data_bits == 8 else np.int16
        self.out_bytes = len(dut.m_axis_tdata) // 8
        self.n = self.spec.n
        dut.n.value = self.n

    def set_n(self, n: int) -> None:
        """Kept per group for the next groups (only while the unit is empty)."""
        self.n = n
        self.dut.n.value = n

    def stalls(self, p_idle: float, p_bp: float):
        self.src.set_pause_generator(random_pauses(self.rng, p_idle))
        self.sink.set_pause_generator(random_pauses(self.rng, p_bp))

    def groups(self, count: int, kind: str) -> np.ndarray:
        s = self.spec
        lo, hi = signed_range(s.data_bits)
        shape = (count, s.m)
        if kind == "random":
            return self.rng.integers(lo, hi + 1, size=shape)
        if kind == "tied":          # few magnitudes, both signs: many exact ties
            mags = self.rng.choice([0, 1, 2, hi], size=shape)
            return mags * self.rng.choice([-1, 1], size=shape)
        if kind == "extremes":      # |lo| = hi + 1 must outrank hi
            return self.rng.choice([lo, hi, -hi, 0, lo + 1], size=shape)
        if kind == "sparse":        # fewer than N non-zeros: zeros fill the free slots
            g = np.zeros(shape, dtype=np.int64)
            for row in g:
                nz = self.rng.integers(0, s.n)
                pos = self.rng.choice(s.m, size=nz, replace=False)
                row[pos] = self.rng.integers(lo, hi + 1, size=nz)
            return g
        if kind == "zero":
            return np.zeros(shape, dtype=np.int64)
        raise ValueError(kind)

    async def check(self, groups: np.ndarray, what: str):
        s = self.spec
        n = self.n
        spg = Abi(s).subrecords(n)
        groups = groups.astype(self.dtype)
        want = compress(groups, n, s.m, axis=1)            # lanes = groups, one group each
        # spg records of N slots per group; slots past n: value 0, index 0 (memory ABI v2)
        want_v = np.zeros((len(groups), spg * s.n), np.int64)
        want_i = np.zeros((len(groups), spg * s.n), np.int64)
        want_v[:, :n], want_i[:, :n] = want.values[:, 0, :], want.indices[:, 0, :]
        for g in groups:
            await self.src.send(g.tobytes())
        got_vals, got_idx = [], []
        mask = (1 << s.idx_bits) - 1
        for _ in range(len(groups) * spg):
            frame = await with_timeout(self.sink.recv(), (200 + 50 * len(groups)) * CLOCK_NS, "ns")
            data = bytes(frame.tdata)
            assert len(data) == self.out_bytes, f"output beat of {len(data)} bytes, expected {self.out_bytes}"
            word = int.from_bytes(data, "little")
            vals_end = s.n * s.mem_data_bits // 8
            got_vals.append(np.frombuffer(data[:vals_end], dtype=self.dtype))
            idx_word = word >> (s.n * s.mem_data_bits)
            got_idx.append([(idx_word >> (i * s.idx_bits)) & mask for i in range(s.n)])
        got_vals = np.array(got_vals).reshape(len(groups), spg * s.n)
        got_idx = np.array(got_idx).reshape(len(groups), spg * s.n)
        bad = np.flatnonzero((got_vals != want_v).any(1) | (got_idx != want_i).any(1))
        assert bad.size == 0, (f"{what} (n={n}): {bad.size} of {len(groups)} groups differ; first group "
                               f"{groups[bad[0]].tolist()}: got values {got_vals[bad[0]].tolist()} indices "
                               f"{got_idx[bad[0]].tolist()}, expected {want_v[bad[0]].tolist()} "
                               f"{want_i[bad[0]].tolist()}")
        self.dut._log.info("%s (n=%d): %d groups bit-exact", what, n, len(groups))


@cocotb.test()
async def test_group_kinds(dut):
    """Random, tied, extreme, sparse and all-zero groups with random idle and backpressure."""
    tb = PruneTB(dut, "test_group_kinds")
    await pulse_reset(dut)
    tb.stalls(0.3, 0.3)
    for kind in ("random", "tied", "extremes", "sparse", "zero"):
        await tb.check(tb.groups(cases(64), kind), kind)
    mixed = np.concatenate([tb.groups(40, k) for k in ("random", "tied", "extremes", "sparse", "zero")])
    await tb.check(mixed[tb.rng.permutation(len(mixed))], "mixed")


@cocotb.test()
async def test_full_rate_and_reset(dut):
    """No stalls: one group per cycle after a 3-cycle latency; then a reset mid-stream and a clean run."""
    tb = PruneTB(dut, "test_full_rate_and_reset")
    await pulse_reset(dut)
    tb.stalls(0.0, 0.0)
    count = 64
    groups = tb.groups(count, "random")
    accepted = delivered = 0
    first_out = None

    async def count_beats():
        nonlocal accepted, delivered, first_out
        cycle = 0
        while delivered < count:
            await RisingEdge(dut.clk)
            cycle += 1
            await ReadOnly()
            if dut.s_axis_tvalid.value == 1 and dut.s_axis_tready.value == 1:
                accepted += 1
            if dut.m_axis_tvalid.value == 1 and dut.m_axis_tready.value == 1:
                delivered += 1
                first_out = cycle if first_out is None else first_out
                last_out = cycle
        return last_out - first_out + 1

    counter = cocotb.start_soon(count_beats())
    await tb.check(groups, "full rate")
    span = await counter
    assert span == count, f"{count} groups left over {span} cycles: the unit must take one group per cycle"
    # Reset while groups are in flight, then a correct run.
    tb.stalls(0.2, 0.2)
    for g in tb.groups(16, "random").astype(tb.dtype):
        await tb.src.send(g.tobytes())
    for _ in range(6):
        await RisingEdge(dut.clk)
    tb.src.clear()
    tb.sink.clear()
    await pulse_reset(dut)
    assert dut.m_axis_tvalid.value == 0
    tb.sink.clear()
    await tb.check(tb.groups(32, "tied"), "after reset")


@cocotb.test()
async def test_runtime_n(dut):
    """Every n of 1..M-1 (runtime N) on random, tied, extreme, sparse and all-zero groups under stalls, the n
    changed between bursts; then without stalls a group takes exactly ceil(n / N) cycles."""
    tb = PruneTB(dut, "test_runtime_n")
    await pulse_reset(dut)
    s = tb.spec
    tb.stalls(0.3, 0.3)
    for n in [int(x) for x in tb.rng.permutation(np.arange(1, s.m))]:
        tb.set_n(n)
        mixed = np.concatenate([tb.groups(cases(6), k) for k in ("random", "tied", "extremes", "sparse", "zero")])
        await tb.check(mixed[tb.rng.permutation(len(mixed))], "mixed")
    tb.stalls(0.0, 0.0)
    for n in sorted({1, s.n, min(s.n + 1, s.m - 1), s.m - 1}):
        tb.set_n(n)
        spg = Abi(s).subrecords(n)
        count = 12
        first = last = None
        done = 0

        async def span():
            nonlocal first, last, done
            cycle = 0
            while done < count * spg:
                await RisingEdge(dut.clk)
                cycle += 1
                await ReadOnly()
                if dut.m_axis_tvalid.value == 1 and dut.m_axis_tready.value == 1:
                    done += 1
                    first = cycle if first is None else first
                    last = cycle
        counter = cocotb.start_soon(span())
        await tb.check(tb.groups(count, "random"), "full rate")
        await counter
        assert last - first + 1 == count * spg, f"n={n}: {count} groups over {last - first + 1} cycles, want {count * spg}"
