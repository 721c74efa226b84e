"""cocotb testbench of sat_bbuf, the ping-pong B reuse buffer of sat_kernel.

The reference is the buffer's contract (docs/RTL.md "B reuse buffer"): with ``reuse`` set, the
records of column tile ct (``tile_recs`` = G each) come out ``reps`` times, g = 0 .. G-1 in order,
column tile after column tile; with ``reuse`` clear every record passes through once. Random
records, random idle cycles on the input and random backpressure on the output; column tiles from
1 record to a full bank (G = DEPTH) and many column tiles (every bank switch); jobs back to back
with ``clear`` between them; reset with records in flight; and, without stalls, one record per
cycle from the first record out to the last (no bubble at a replay or bank switch) and the first
record out 3 cycles after it went in.
"""
from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb_common import cases, expect_silence, pulse_reset, rng_for, start_clock


class BbufTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.rng = rng_for(name)
        self.rb = len(dut.in_data)
        self.depth = int(dut.DEPTH.value)
        self.max_reps = (1 << len(dut.reps)) - 1
        start_clock(dut)
        dut.in_valid.value = 0
        dut.out_ready.value = 0
        dut.clear.value = 0
        dut.reuse.value = 0
        dut.tile_recs.value = 1
        dut.reps.value = 1

    async def reset(self) -> None:
        await pulse_reset(self.dut)

    def records(self, count: int) -> list[int]:
        return [int.from_bytes(self.rng.bytes((self.rb + 7) // 8), "little") & ((1 << self.rb) - 1)
                for _ in range(count)]

    async def job(self, *, reuse: bool, g: int, reps: int, tiles: int, p_idle: float, p_bp: float,
                  max_cycles: int | None = None) -> tuple[list[int], list[int], list[int], list[int]]:
        """One job: clear, then tiles x g random records in; returns (sent, got, in-cycles, out-cycles)."""
        dut = self.dut
        await RisingEdge(dut.clk)
        dut.reuse.value = int(reuse)
        dut.tile_recs.value = g
        dut.reps.value = reps
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        sent = self.records(tiles * g)
        want_n = tiles * g * (reps if reuse else 1)
        got, t_in, t_out = [], [], []
        i = cycle = 0
        limit = max_cycles or 40 * (want_n + tiles * g) + 200
        while len(got) < want_n:
            idle = p_idle > 0 and self.rng.random() < p_idle
            dut.in_valid.value = int(i < len(sent) and not idle)
            dut.in_data.value = sent[i] if i < len(sent) else int(self.rng.integers(0, 1 << 30))   # garbage while idle
            dut.out_ready.value = int(not (p_bp > 0 and self.rng.random() < p_bp))
            await ReadOnly()
            if dut.in_valid.value and dut.in_ready.value:
                i += 1
                t_in.append(cycle)
            if dut.out_valid.value and dut.out_ready.value:
                got.append(int(dut.out_data.value))
                t_out.append(cycle)
            await RisingEdge(dut.clk)
            cycle += 1
            assert cycle < limit, f"no progress: {len(got)} of {want_n} records out after {cycle} cycles"
        await expect_silence(dut, 8, "job")
        return sent, got, t_in, t_out

    @staticmethod
    def expected(sent: list[int], *, reuse: bool, g: int, reps: int) -> list[int]:
        if not reuse:
            return list(sent)
        out = []
        for t in range(len(sent) // g):
            out += sent[t * g:(t + 1) * g] * reps
        return out

    async def check(self, *, reuse: bool, g: int, reps: int, tiles: int, p_idle: float, p_bp: float, what: str):
        sent, got, _, _ = await self.job(reuse=reuse, g=g, reps=reps, tiles=tiles, p_idle=p_idle, p_bp=p_bp)
        want = self.expected(sent, reuse=reuse, g=g, reps=reps)
        bad = [n for n, (x, y) in enumerate(zip(got, want)) if x != y]
        assert got == want, (f"{what}: reuse={reuse} G={g} reps={reps} tiles={tiles}: {len(got)} records, "
                             f"want {len(want)}; first difference at record {bad[0] if bad else '-'}")


def _shapes(tb: BbufTB, count: int) -> list[tuple[int, int, int]]:
    d = tb.depth
    fixed = [(1, 1, 1), (1, 3, 5), (d, 2, 3), (d, 1, 2), (max(1, d - 1), 5, 4), (2, 1, 7)]
    rnd = [(int(tb.rng.integers(1, d + 1)), int(tb.rng.integers(1, 6)), int(tb.rng.integers(1, 6)))
           for _ in range(count)]
    return fixed + rnd


@cocotb.test()
async def test_replay_random_stalls(dut):
    """Reuse: every column tile replayed reps times in order, random idle/backpressure, jobs back to back."""
    tb = BbufTB(dut, "test_replay_random_stalls")
    await tb.reset()
    for n, (g, reps, tiles) in enumerate(_shapes(tb, cases(12))):
        p_idle, p_bp = [(0.3, 0.3), (0.7, 0.1), (0.1, 0.7), (0.5, 0.5)][n % 4]
        await tb.check(reuse=True, g=g, reps=reps, tiles=tiles, p_idle=p_idle, p_bp=p_bp, what=f"job {n}")


@cocotb.test()
async def test_streaming_fallback(dut):
    """reuse clear (G > DEPTH in the kernel): a wire, records pass once, in order; then reuse again."""
    tb = BbufTB(dut, "test_streaming_fallback")
    await tb.reset()
    for n, (g, tiles) in enumerate([(tb.depth + 1, 3), (2 * tb.depth + 3, 2), (1, 4)]):
        await tb.check(reuse=False, g=g, reps=3, tiles=tiles, p_idle=0.3, p_bp=0.3, what=f"stream {n}")
        await tb.check(reuse=True, g=min(g, tb.depth), reps=2, tiles=tiles, p_idle=0.3, p_bp=0.3, what=f"reuse {n}")
    # without stalls the wire is combinational: a record leaves in the cycle it arrives
    sent, got, t_in, t_out = await tb.job(reuse=False, g=5, reps=4, tiles=2, p_idle=0.0, p_bp=0.0)
    assert got == sent and t_in == t_out


@cocotb.test()
async def test_full_rate(dut):
    """No stalls: one record per cycle from the first out to the last, across replays and bank switches
    (the next column tile fills the other bank while this one is replayed); first record out 3 cycles
    after it went in. Input at half rate (a two-word record): still no bubble after the first tile when
    reps >= 2."""
    tb = BbufTB(dut, "test_full_rate")
    await tb.reset()
    d = tb.depth
    for g, reps, tiles in [(d, 2, 4), (1, 1, 3), (max(1, d // 2), 3, 5), (3, 1, 4)]:
        sent, got, t_in, t_out = await tb.job(reuse=True, g=g, reps=reps, tiles=tiles, p_idle=0.0, p_bp=0.0)
        assert got == tb.expected(sent, reuse=True, g=g, reps=reps)
        assert t_out[0] - t_in[0] == 3, f"G={g}: first record out {t_out[0] - t_in[0]} cycles after it went in"
        assert t_out[-1] - t_out[0] == len(t_out) - 1, (f"G={g} reps={reps} tiles={tiles}: {len(t_out)} records "
                                                         f"over {t_out[-1] - t_out[0] + 1} cycles")
    # half-rate input, reps >= 2: only the first tile's first replay follows the input
    g, reps, tiles = d, 2, 3
    sent, got, t_in, t_out = await tb.job(reuse=True, g=g, reps=reps, tiles=tiles, p_idle=0.5, p_bp=0.0)
    assert got == tb.expected(sent, reuse=True, g=g, reps=reps)


@cocotb.test()
async def test_reset_mid_job(dut):
    """Reset with records in both banks and in the output registers, then a correct job."""
    tb = BbufTB(dut, "test_reset_mid_job")
    await tb.reset()
    d = tb.depth
    dut.reuse.value = 1
    dut.tile_recs.value = d
    dut.reps.value = 3
    for rec in tb.records(2 * d):
        dut.in_valid.value = 1
        dut.in_data.value = rec
        dut.out_ready.value = int(tb.rng.random() < 0.5)
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    await tb.reset()
    await ReadOnly()
    assert not dut.out_valid.value, "out_valid after reset"
    await RisingEdge(dut.clk)
    await tb.check(reuse=True, g=max(1, d - 1), reps=2, tiles=3, p_idle=0.3, p_bp=0.3, what="after reset")
