"""cocotb testbench of the Vitis HLS kernel's exported RTL (only where Vitis HLS is installed).

The HLS kernel (hls_templates/hls) has an s_axilite control port and one m_axi port per pointer
argument, not sat_core's streams, so this testbench drives it like the host does: it places the
operands in AXI RAM models (cocotbext-axi AxiRam, one per m_axi bundle), writes the arguments at
the offsets of the generated regmap.json, starts the kernel (ap_start), waits for ap_done and
compares C bit-exactly with hostpy.golden, for the same kind of random GEMMs as sim/tb_core.py.

NOT RUN HERE: this machine has no Vitis HLS, so there is no exported RTL to run it on; see
docs/RTL.md ("HLS kernel RTL") and sim/hls_rtl.py. Environment: SATGEN_OUT, like the others.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from gen.regmap import MODES
from hostpy.golden import gemm_dense, gemm_sparse
from hostpy.nm import compress
from sim.tb_common import CLOCK_NS, quiet_logs, rng_for, signed_range, spec_under_test

RAM_BYTES = 1 << 22


class HlsKernelTB:
    def __init__(self, dut, name: str):
        self.dut = dut
        self.spec = spec_under_test()
        self.regmap = json.loads((Path(os.environ["SATGEN_OUT"]) / "regmap.json").read_text())
        self.rng = rng_for(name)
        cocotb.start_soon(Clock(dut.ap_clk, CLOCK_NS, unit="ns").start())
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.rams = {}
        for bundle in sorted({r["bundle"] for r in self.regmap["args"] if r["kind"] == "ptr"}):
            self.rams[bundle] = AxiRam(AxiBus.from_prefix(dut, f"m_axi_{bundle}"), dut.ap_clk, dut.ap_rst_n,
                                       reset_active_level=False, size=RAM_BYTES)
        quiet_logs(self.ctrl, *self.rams.values())

    async def reset(self):
        self.dut.ap_rst_n.value = 0
        for _ in range(5):
            await RisingEdge(self.dut.ap_clk)
        self.dut.ap_rst_n.value = 1
        for _ in range(5):
            await RisingEdge(self.dut.ap_clk)

    def arg(self, name: str) -> dict:
        return next(r for r in self.regmap["args"] if r["name"] == name)

    async def write_arg(self, name: str, value: int):
        reg = self.arg(name)
        await self.ctrl.write_dword(reg["offset"], value & 0xFFFFFFFF)
        if reg["width"] == 64:
            await self.ctrl.write_dword(reg["offset"] + 4, value >> 32)

    async def run(self, mode: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = self.spec
        dt = np.int8 if s.mem_data_bits == 8 else np.int16
        adt = np.int32 if s.mem_acc_bits == 32 else np.int64
        rows, k = a.shape
        cols = b.shape[1]
        buffers = {"b": b.astype(dt).tobytes()}
        if mode == "SPARSE":
            comp = compress(a.astype(dt), s.n, s.m, axis=1)
            buffers["a_val"] = comp.values.tobytes()
            buffers["a_idx"] = comp.packed_indices()
            expected = gemm_sparse(comp, b, data_bits=s.data_bits, acc_bits=s.acc_bits)
        else:
            buffers["a_val"] = a.astype(dt).tobytes()
            expected = gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits)
        for name, data in buffers.items():
            self.rams[self.arg(name)["bundle"]].write(0, data)
            await self.write_arg(name, 0)
        await self.write_arg("c", 0)
        for name, value in (("mode", MODES[mode]), ("rows", rows), ("k", k), ("cols", cols)):
            await self.write_arg(name, value)
        ctrl = self.regmap["control"]
        await self.ctrl.write_dword(ctrl["offset"], 1 << ctrl["bits"]["ap_start"])
        for _ in range(200000):
            status = await self.ctrl.read_dword(ctrl["offset"])
            if status & (1 << ctrl["bits"]["ap_done"]):
                break
        else:
            raise AssertionError("the HLS kernel did not raise ap_done")
        data = self.rams[self.arg("c")["bundle"]].read(0, rows * cols * np.dtype(adt).itemsize)
        got = np.frombuffer(data, dtype=adt).reshape(rows, cols).astype(np.int64)
        assert np.array_equal(got, expected), f"{mode} {rows}x{k}x{cols}: HLS RTL result differs from golden"
        return got


@cocotb.test()
async def test_gemms(dut):
    """Random sparse and dense GEMMs (K not a multiple of M), bit-exact vs hostpy.golden."""
    tb = HlsKernelTB(dut, "test_gemms")
    await tb.reset()
    s = tb.spec
    lo, hi = signed_range(s.data_bits)
    modes = [m for m in ("SPARSE", "DENSE") if m in tb.regmap["modes"]]
    for rows, k, cols in ((s.rows, 3 * s.m + 1, s.cols), (2 * s.rows + 1, 5 * s.m, s.cols - 1)):
        for mode in modes:
            a = tb.rng.integers(lo, hi + 1, size=(rows, k))
            b = tb.rng.integers(lo, hi + 1, size=(k, cols))
            await tb.run(mode, a, b)
