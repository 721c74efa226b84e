"""cocotb testbench of the Vitis HLS kernel's exported RTL (only where Vitis HLS is installed).

The HLS kernel (hls_templates/hls) has an s_axilite control port and one m_axi port per pointer
argument, not sat_core's streams, so this testbench drives it like the host does: it places the
operands (memory ABI v2 bytes, gen.csim's vectors) in AXI RAM models (cocotbext-axi AxiRam, one
per m_axi bundle), writes the arguments at the offsets of the generated regmap.json (n included),
starts the kernel (ap_start), waits for ap_done, checks the status register and compares every
output byte with hostpy.golden: DENSE, and SPARSE and PRUNE at every runtime n.

NOT RUN HERE: this machine has no Vitis HLS, so there is no exported RTL to run it on; see
docs/RTL.md ("HLS kernel RTL") and sim/hls_rtl.py. Environment: SATGEN_OUT, like the others.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from gen.csim import gemm_buffers, prune_buffers
from gen.regmap import MODES
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

    async def run(self, mode: str, buffers: dict[str, bytes], rows: int, k: int, cols: int, n: int) -> None:
        """One job: inputs and the golden model's expected outputs are memory ABI v2 bytes
        (gen.csim.gemm_buffers / prune_buffers, i.e. hostpy.abi + hostpy.golden); every output is
        compared byte for byte, and the status register must read 0."""
        outs = [r["name"] for r in self.regmap["args"] if r["kind"] == "ptr" and r["direction"] == "out"]
        base = 0
        for name, data in buffers.items():
            self.rams[self.arg(name)["bundle"]].write(base, data if name not in outs else bytes(len(data)))
            await self.write_arg(name, base)
        for name, value in (("mode", MODES[mode]), ("rows", rows), ("k", k), ("cols", cols), ("n", n)):
            await self.write_arg(name, value)
        ctrl = self.regmap["control"]
        await self.ctrl.write_dword(ctrl["offset"], 1 << ctrl["bits"]["ap_start"])
        for _ in range(200000):
            if await self.ctrl.read_dword(ctrl["offset"]) & (1 << ctrl["bits"]["ap_done"]):
                break
        else:
            raise AssertionError("the HLS kernel did not raise ap_done")
        status = await self.ctrl.read_dword(self.arg("status")["offset"])
        assert status == 0, f"{mode} {rows}x{k}x{cols} n={n}: status 0x{status:x}"
        for name in outs:
            if name in buffers:
                got = self.rams[self.arg(name)["bundle"]].read(base, len(buffers[name]))
                assert got == buffers[name], f"{mode} {rows}x{k}x{cols} n={n}: {name} differs from hostpy.golden"


@cocotb.test()
async def test_gemms(dut):
    """Random sparse and dense GEMMs (K not a multiple of M) and PRUNE, bit-exact vs hostpy.golden;
    SPARSE and PRUNE at every runtime n (regmap.json nm.runtime_n), back to back."""
    tb = HlsKernelTB(dut, "test_gemms")
    await tb.reset()
    s = tb.spec
    lo, hi = signed_range(s.data_bits)
    ns = tb.regmap["nm"]["runtime_n"]
    jobs = [("DENSE", None)] + [(m, n) for n in ns for m in ("SPARSE", "PRUNE")]
    for rows, k, cols in ((s.rows, 3 * s.m + 1, s.cols), (2 * s.rows + 1, 5 * s.m, s.cols - 1)):
        a = tb.rng.integers(lo, hi + 1, size=(rows, k))
        b = tb.rng.integers(lo, hi + 1, size=(k, cols))
        for mode, n in jobs:
            if mode == "PRUNE":
                await tb.run(mode, prune_buffers(s, a, n), rows, k, 0, n)
            else:
                await tb.run(mode, gemm_buffers(s, mode, a, b, n), rows, k, cols, s.n if n is None else n)
