"""cocotb testbench of sat_array: R x C tiles bit-exact vs hostpy.golden, drained through the chain.

The testbench plays the core's part: it streams beats with random idle cycles, drains the shadow
bank with random stalls of `shift` (the array's backpressure), lets the next tile's beats flow
while the previous tile drains, and holds a tile's last beat until the bank is free.
"""
from __future__ import annotations

from collections import deque

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hostpy.golden import gemm_dense, gemm_sparse
from hostpy.nm import compress
from sim.tb_common import cases, pack, pulse_reset, rng_for, signed_range, spec_under_test, start_clock, unpack_signed


class ArrayTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.spec = spec_under_test()
        self.rng = rng_for(name)
        self.group = self.spec.m if self.spec.sparse else self.spec.n
        self.expected: deque = deque()
        self.bank_free = True
        self.failures: list[str] = []
        self.tiles_checked = 0
        self.p_stall = 0.0
        start_clock(dut)
        dut.shift.value = 0
        self.idle()
        cocotb.start_soon(self._drain())

    @property
    def modes(self) -> list[str]:
        return ["SPARSE", "DENSE"] if self.spec.sparse else ["DENSE"]

    def operands(self, shape, kind="random") -> np.ndarray:
        lo, hi = signed_range(self.spec.data_bits)
        if kind in ("min", "max"):
            return np.full(shape, lo if kind == "min" else hi, dtype=np.int64)
        return self.rng.integers(lo, hi + 1, size=shape).astype(np.int64)

    def idle(self):
        s, d = self.spec, self.dut
        d.in_valid.value = 0
        d.in_first.value = int(self.rng.integers(2))
        d.in_last.value = int(self.rng.integers(2))
        d.w_val.value = pack(self.operands(s.rows * s.n), s.data_bits)
        d.act.value = pack(self.operands(s.cols * self.group), s.data_bits)
        if s.sparse:
            d.in_dense.value = int(self.rng.integers(2))
            d.w_idx.value = pack(self.rng.integers(0, s.m, s.rows * s.n), s.idx_bits)

    def tile(self, mode: str, beats: int, kind: str = "random"):
        """Beats of one tile and its golden R x C result."""
        s = self.spec
        if mode == "SPARSE":
            k = beats * s.m
            a = compress(self.operands((s.rows, k), kind).astype(np.int16), s.n, s.m, axis=1)
            b = self.operands((k, s.cols), kind)
            w = a.values.transpose(1, 0, 2).reshape(beats, -1)           # [beat][row*N+slot]
            idx = a.indices.transpose(1, 0, 2).reshape(beats, -1)
            act = b.reshape(beats, s.m, s.cols).transpose(0, 2, 1).reshape(beats, -1)   # [beat][col*M+pos]
            return w, idx, act, gemm_sparse(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits)
        k = beats * s.n
        a = self.operands((s.rows, k), kind)
        b = self.operands((k, s.cols), kind)
        w = a.reshape(s.rows, beats, s.n).transpose(1, 0, 2).reshape(beats, -1)
        act = self.operands((beats, s.cols, self.group), kind)            # lanes >= N: garbage
        act[:, :, : s.n] = b.reshape(beats, s.n, s.cols).transpose(0, 2, 1)
        return w, None, act.reshape(beats, -1), gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits)

    async def _drain(self):
        s, d = self.spec, self.dut
        while True:
            await RisingEdge(d.clk)
            await ReadOnly()
            if d.loading.value != 1:
                continue
            await RisingEdge(d.clk)               # the bank loads at this edge
            rows = []
            while len(rows) < s.rows:
                stall = self.rng.random() < self.p_stall
                d.shift.value = int(not stall)
                await ReadOnly()
                if not stall:       # drain_rows rows per shift, row-major
                    flat = unpack_signed(int(d.out_rows.value), s.acc_bits, s.drain_rows * s.cols)
                    rows.extend(np.reshape(flat, (s.drain_rows, s.cols)).tolist())
                await RisingEdge(d.clk)
            d.shift.value = 0
            self.bank_free = True
            mode, expected = self.expected.popleft()
            got = np.array(rows, dtype=np.int64)
            self.tiles_checked += 1
            if not np.array_equal(got, expected):
                self.failures.append(f"tile {self.tiles_checked} ({mode}): got {got.tolist()}, expected {expected.tolist()}")

    async def run_tiles(self, tiles, p_idle: float, p_stall: float):
        s, d = self.spec, self.dut
        self.p_stall = p_stall
        for mode, (w, idx, act, expected) in tiles:
            for g in range(len(w)):
                last = g == len(w) - 1
                while self.rng.random() < p_idle or (last and not self.bank_free):
                    self.idle()
                    await RisingEdge(d.clk)
                d.in_valid.value = 1
                d.in_first.value = int(g == 0)
                d.in_last.value = int(last)
                d.w_val.value = pack(w[g], s.data_bits)
                d.act.value = pack(act[g], s.data_bits)
                if s.sparse:
                    d.in_dense.value = int(mode == "DENSE")
                    d.w_idx.value = pack(idx[g] if idx is not None else self.rng.integers(0, s.m, s.rows * s.n),
                                         s.idx_bits)
                if last:
                    self.bank_free = False
                    self.expected.append((mode, expected))
                await RisingEdge(d.clk)
            self.idle()
        while self.expected:
            await RisingEdge(d.clk)
        await RisingEdge(d.clk)

    def verdict(self, minimum: int):
        assert not self.failures, "; ".join(self.failures[:3])
        assert self.tiles_checked >= minimum, f"only {self.tiles_checked} tiles checked, expected {minimum}"


@cocotb.test()
async def test_random_tiles(dut):
    """Random tiles of 1..3R beats in every mode, random idle and drain stalls, then back to back."""
    tb = ArrayTB(dut, "test_random_tiles")
    await pulse_reset(dut)
    s = tb.spec
    tiles = [(mode, tb.tile(mode, int(tb.rng.integers(1, 3 * s.rows)))) for _ in range(cases(4)) for mode in tb.modes]
    await tb.run_tiles(tiles, 0.3, 0.3)
    await tb.run_tiles(tiles, 0.0, 0.0)
    tb.verdict(2 * len(tiles))


@cocotb.test()
async def test_extremes(dut):
    """All-min and all-max operands, with stalls."""
    tb = ArrayTB(dut, "test_extremes")
    await pulse_reset(dut)
    tiles = [(mode, tb.tile(mode, 5, kind)) for kind in ("min", "max") for mode in tb.modes]
    await tb.run_tiles(tiles, 0.2, 0.4)
    tb.verdict(len(tiles))
