"""cocotb testbench of sat_fifo, the block-RAM FIFO of the kernel's AXI masters.

The reference is the FIFO's contract (the header of sat_fifo.sv): words leave in the order they
entered, none lost or duplicated; ``count`` is exactly the words accepted and not yet delivered; the
FIFO holds DEPTH words in its RAM plus 3 in its read/skid/output registers, so ``in_ready`` is high
whenever fewer than DEPTH words are held and it refuses only at DEPTH..DEPTH+3; a word written into
an empty FIFO is at the output 3 cycles later; with no stalls it moves one word per cycle. The run
uses a small DEPTH (set by the test through a Verilator parameter) so that full and empty happen
all the time under random idle cycles on the input and random backpressure on the output.
"""
from __future__ import annotations

from collections import deque

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from sim.tb_common import cases, expect_silence, pulse_reset, rng_for, start_clock


class FifoTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.rng = rng_for(name)
        self.w = len(dut.in_data)
        self.depth = int(dut.DEPTH.value)
        start_clock(dut)
        dut.in_valid.value = 0
        dut.out_ready.value = 0
        dut.in_data.value = 0

    def word(self) -> int:
        return int.from_bytes(self.rng.bytes((self.w + 7) // 8), "little") & ((1 << self.w) - 1)

    async def run(self, words: int, *, p_idle: float, p_bp: float, what: str,
                  phases: list[tuple[int, float, float]] | None = None) -> tuple[list[int], list[int]]:
        """Push ``words`` random words through with random idle/backpressure, checking the contract every
        cycle; ``phases`` (cycles, p_idle, p_bp) override the probabilities for the first cycles (e.g. a
        long stretch of backpressure to fill the FIFO). Returns the cycles of the accepts and deliveries."""
        dut = self.dut
        sent, held = [self.word() for _ in range(words)], deque()
        i = delivered = cycle = 0
        t_in, t_out = [], []
        refused_at = []                              # counts at which in_ready was low
        limit = 60 * words + 10 * self.depth + 200
        while delivered < words:
            pi, pb = p_idle, p_bp
            c = cycle
            for span, a, b in phases or []:
                if c < span:
                    pi, pb = a, b
                    break
                c -= span
            offer = i < words and not (pi > 0 and self.rng.random() < pi)
            dut.in_valid.value = int(offer)
            dut.in_data.value = sent[i] if i < words else self.word()        # garbage while idle
            dut.out_ready.value = int(not (pb > 0 and self.rng.random() < pb))
            await ReadOnly()
            count = int(dut.count.value)
            assert count == len(held), f"{what}: cycle {cycle}: count {count}, {len(held)} words held"
            if not int(dut.in_ready.value):
                assert count >= self.depth, f"{what}: cycle {cycle}: in_ready low with {count} < DEPTH words held"
                refused_at.append(count)
            assert count <= self.depth + 3, f"{what}: cycle {cycle}: {count} words held > DEPTH + 3"
            if int(dut.out_valid.value) and int(dut.out_ready.value):
                assert held, f"{what}: cycle {cycle}: a word out of an empty FIFO"
                got, want = int(dut.out_data.value), held.popleft()
                assert got == want, f"{what}: word {delivered}: {got:#x}, want {want:#x}"
                delivered += 1
                t_out.append(cycle)
            if offer and int(dut.in_ready.value):
                held.append(sent[i])
                i += 1
                t_in.append(cycle)
            await RisingEdge(dut.clk)
            cycle += 1
            assert cycle < limit, f"{what}: no progress: {delivered} of {words} words out after {cycle} cycles"
        await ReadOnly()
        await RisingEdge(dut.clk)
        assert int(dut.count.value) == 0, f"{what}: count {int(dut.count.value)} with every word delivered"
        await expect_silence(dut, 6, what)
        self.refused_at = refused_at
        return t_in, t_out


@cocotb.test()
async def test_random_stalls(dut):
    """Order, count and the full flag under random idle cycles and backpressure, runs back to back."""
    tb = FifoTB(dut, "test_random_stalls")
    await pulse_reset(dut)
    refused = []
    for n in range(cases(8)):
        p_idle, p_bp = [(0.2, 0.6), (0.6, 0.2), (0.4, 0.4), (0.05, 0.9)][n % 4]
        await tb.run(int(tb.rng.integers(1, 12 * tb.depth)), p_idle=p_idle, p_bp=p_bp, what=f"run {n}")
        refused += tb.refused_at
    assert refused, "the random runs never filled the FIFO: the full flag went untested"


@cocotb.test()
async def test_fill_and_drain(dut):
    """Output blocked: exactly DEPTH + 3 words go in, then in_ready stays low; every word comes out in
    order once the output opens, and in_ready rises again."""
    tb = FifoTB(dut, "test_fill_and_drain")
    await pulse_reset(dut)
    stall = 4 * tb.depth + 20
    t_in, _ = await tb.run(tb.depth + 8, p_idle=0.0, p_bp=0.0, what="fill", phases=[(stall, 0.0, 1.0)])
    accepted_while_blocked = sum(1 for t in t_in if t < stall)
    assert accepted_while_blocked == tb.depth + 3, (accepted_while_blocked, tb.depth)
    # while the RAM is full the read side still moves words into the read/skid/output registers: the
    # refusals happen from DEPTH words held and last at DEPTH + 3 until the output opens
    assert tb.refused_at and min(tb.refused_at) >= tb.depth and max(tb.refused_at) == tb.depth + 3, tb.refused_at


@cocotb.test()
async def test_latency_and_rate(dut):
    """No stalls: the first word out 3 cycles after it went in, then one word per cycle (in and out)."""
    tb = FifoTB(dut, "test_latency_and_rate")
    await pulse_reset(dut)
    words = 5 * tb.depth + 7
    t_in, t_out = await tb.run(words, p_idle=0.0, p_bp=0.0, what="full rate")
    assert t_in == list(range(words)), "the input was refused with the output free"
    assert t_out == [t + 3 for t in t_in], (t_in[:5], t_out[:5])


@cocotb.test()
async def test_reset_with_words_held(dut):
    """A reset with words in the RAM and the output registers empties the FIFO; it works after."""
    tb = FifoTB(dut, "test_reset_with_words_held")
    await pulse_reset(dut)
    dut.out_ready.value = 0
    for _ in range(tb.depth + 2):
        dut.in_valid.value = 1
        dut.in_data.value = tb.word()
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    await pulse_reset(dut)
    await ReadOnly()
    assert int(dut.count.value) == 0 and not int(dut.out_valid.value) and int(dut.in_ready.value)
    await RisingEdge(dut.clk)
    await tb.run(3 * tb.depth, p_idle=0.3, p_bp=0.3, what="after reset")
