"""cocotb testbench of sat_pe: one PE, tile sums bit-exact vs hostpy.golden.

The PE has no handshake: "random idle" is random cycles without a beat (with garbage on every data
input, which the PE must ignore), and the drain side's stall is the `shift` input, exercised in
test_shift_chain. Tiles follow each other back to back (the next tile's first beat in the cycle
after the last beat) as well as with gaps.
"""
from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from hostpy.golden import gemm_dense, gemm_sparse, wrap
from hostpy.nm import compress
from sim.tb_common import cases, pack, pulse_reset, rng_for, signed_range, spec_under_test, start_clock, unpack_signed


class PeTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.spec = spec_under_test()
        self.rng = rng_for(name)
        self.group = self.spec.m if self.spec.sparse else self.spec.n     # activations per beat
        self.failures: list[str] = []
        self.checked = 0
        start_clock(dut)
        self.idle()
        dut.shift.value = 0
        dut.shift_in.value = 0

    @property
    def modes(self) -> list[str]:
        return ["SPARSE", "DENSE"] if self.spec.sparse else ["DENSE"]

    def operands(self, shape, kind="random") -> np.ndarray:
        lo, hi = signed_range(self.spec.data_bits)
        if kind == "min":
            return np.full(shape, lo, dtype=np.int64)
        if kind == "max":
            return np.full(shape, hi, dtype=np.int64)
        return self.rng.integers(lo, hi + 1, size=shape).astype(np.int64)

    def idle(self):
        """No beat this cycle; garbage everywhere else."""
        s, d = self.spec, self.dut
        d.in_valid.value = 0
        d.in_first.value = int(self.rng.integers(2))
        d.in_last.value = int(self.rng.integers(2))
        d.w_val.value = pack(self.operands(s.n), s.data_bits)
        d.act.value = pack(self.operands(self.group), s.data_bits)
        if s.sparse:
            d.in_dense.value = int(self.rng.integers(2))
            d.w_idx.value = pack(self.rng.integers(0, s.m, s.n), s.idx_bits)

    def tile(self, mode: str, beats: int, kind: str = "random"):
        """One tile's beats and its golden sum: (w_val [B][N], w_idx [B][N] | None, act [B][G], expected)."""
        s = self.spec
        if mode == "SPARSE":
            k = beats * s.m
            a = compress(self.operands((1, k), kind).astype(np.int16), s.n, s.m, axis=1)
            act = self.operands((beats, s.m), kind)
            expected = gemm_sparse(a, act.reshape(k, 1), data_bits=s.data_bits, acc_bits=s.acc_bits)[0, 0]
            return a.values[0], a.indices[0], act, int(expected)
        w = self.operands((beats, s.n), kind)
        act = self.operands((beats, self.group), kind)         # lanes >= N are garbage in dense mode
        expected = gemm_dense(w.reshape(1, -1), act[:, : s.n].reshape(-1, 1), data_bits=s.data_bits,
                              acc_bits=s.acc_bits)[0, 0]
        return w, None, act, int(expected)

    async def _check_shadow(self, expected: int, what: str):
        await RisingEdge(self.dut.clk)      # the edge that moves the sum into the shadow register
        await ReadOnly()
        got = unpack_signed(int(self.dut.shadow.value), self.spec.acc_bits, 1)[0]
        self.checked += 1
        if got != expected:
            self.failures.append(f"{what}: shadow {got}, expected {expected}")

    async def run_tiles(self, tiles, p_idle: float, what: str):
        s, d = self.spec, self.dut
        for t, (mode, (w, idx, act, expected)) in enumerate(tiles):
            for g in range(len(w)):
                while self.rng.random() < p_idle:
                    self.idle()
                    await RisingEdge(d.clk)
                d.in_valid.value = 1
                d.in_first.value = int(g == 0)
                d.in_last.value = int(g == len(w) - 1)
                d.w_val.value = pack(w[g], s.data_bits)
                d.act.value = pack(act[g], s.data_bits)
                if s.sparse:
                    d.in_dense.value = int(mode == "DENSE")
                    d.w_idx.value = pack(idx[g] if idx is not None else self.rng.integers(0, s.m, s.n), s.idx_bits)
                await RisingEdge(d.clk)
                if g == len(w) - 1:
                    cocotb.start_soon(self._check_shadow(expected, f"{what} tile {t} ({mode}, {len(w)} beats)"))
            self.idle()
        for _ in range(3):
            await RisingEdge(d.clk)

    def verdict(self, minimum: int):
        assert not self.failures, "; ".join(self.failures[:5])
        assert self.checked >= minimum, f"only {self.checked} tile sums were checked, expected {minimum}"


@cocotb.test()
async def test_random_tiles(dut):
    """Random tiles in every mode, random lengths (1 beat included), random idle cycles."""
    tb = PeTB(dut, "test_random_tiles")
    await pulse_reset(dut)
    tiles = [(mode, tb.tile(mode, int(tb.rng.integers(1, 12)))) for _ in range(cases(12)) for mode in tb.modes]
    order = tb.rng.permutation(len(tiles))
    tiles = [tiles[i] for i in order]
    await tb.run_tiles(tiles, 0.3, "random")
    await tb.run_tiles(tiles[:6], 0.0, "back-to-back")
    tb.verdict(len(tiles) + 6)


@cocotb.test()
async def test_extremes(dut):
    """Max/min operands everywhere, and a reset between a half tile and a correct tile."""
    tb = PeTB(dut, "test_extremes")
    await pulse_reset(dut)
    tiles = [(mode, tb.tile(mode, 9, kind)) for kind in ("min", "max") for mode in tb.modes]
    await tb.run_tiles(tiles, 0.2, "extreme")
    # A tile cut short by a reset must not leak into the next one.
    w, idx, act, _ = tb.tile(tb.modes[0], 6, "min")
    for g in range(3):
        dut.in_valid.value = 1
        dut.in_first.value = int(g == 0)
        dut.in_last.value = 0
        dut.w_val.value = pack(w[g], tb.spec.data_bits)
        dut.act.value = pack(act[g], tb.spec.data_bits)
        await RisingEdge(dut.clk)
    tb.idle()
    await pulse_reset(dut)
    after = [(mode, tb.tile(mode, 5)) for mode in tb.modes]
    await tb.run_tiles(after, 0.2, "after reset")
    tb.verdict(len(tiles) + len(after))


@cocotb.test()
async def test_accumulator_wrap(dut):
    """The largest product on every multiplier until the accumulator passes its limit: it wraps
    exactly like hostpy.golden.wrap (acc_bits two's complement), or, where that would take over
    2^17 beats, runs 2^17 beats up to near the limit."""
    tb = PeTB(dut, "test_accumulator_wrap")
    s, d = tb.spec, dut
    await pulse_reset(dut)
    lo, _ = signed_range(s.data_bits)
    prod = lo * lo
    beats = min((1 << (s.acc_bits - 1)) // (s.n * prod) + 3, 1 << 17)
    d.in_valid.value = 1
    d.in_first.value = 1
    d.in_last.value = 0
    d.w_val.value = pack([lo] * s.n, s.data_bits)
    d.act.value = pack([lo] * tb.group, s.data_bits)
    if s.sparse:
        d.in_dense.value = 0
        d.w_idx.value = pack(range(s.n), s.idx_bits)
    await RisingEdge(d.clk)
    d.in_first.value = 0
    await ClockCycles(d.clk, beats - 2)
    d.in_last.value = 1
    await RisingEdge(d.clk)
    tb.idle()
    expected = int(wrap(np.array([beats * s.n * prod], dtype=np.int64), s.acc_bits)[0])
    await tb._check_shadow(expected, f"{beats} beats of {s.n} x ({lo})^2")
    tb.verdict(1)
    dut._log.info("accumulator after %d beats: %d (unwrapped %d)", beats, expected, beats * s.n * prod)


@cocotb.test()
async def test_shift_chain(dut):
    """The shadow register takes shift_in when shift is high and holds otherwise; a tile's load wins."""
    tb = PeTB(dut, "test_shift_chain")
    s, d = tb.spec, dut
    await pulse_reset(dut)
    held = None
    for cycle in range(200):
        shift = bool(tb.rng.integers(2))
        value = int(tb.rng.integers(-(1 << (s.acc_bits - 1)), 1 << (s.acc_bits - 1), dtype=np.int64))
        d.shift.value = int(shift)
        d.shift_in.value = value & ((1 << s.acc_bits) - 1)
        await RisingEdge(d.clk)
        await ReadOnly()
        held = value if shift else held
        if held is not None:
            got = unpack_signed(int(d.shadow.value), s.acc_bits, 1)[0]
            assert got == held, f"cycle {cycle}: shadow {got}, expected {held} (shift={shift})"
        await FallingEdge(d.clk)
    # A one-beat tile whose load coincides with a shift: the load has priority.
    mode = tb.modes[0]
    w, idx, act, expected = tb.tile(mode, 1)
    await RisingEdge(d.clk)
    d.shift.value = 1
    await tb.run_tiles([(mode, (w, idx, act, expected))], 0.0, "load over shift")
    d.shift.value = 0
    tb.verdict(1)
