"""sat_fifo, the block-RAM FIFO behind every AXI master of the kernel: its cocotb unit bench.

The bench (sim/tb_fifo.py) checks the FIFO's contract cycle by cycle (order, exact count, the
registered full flag, latency 3, one word per cycle, reset) on a small instance: the kernel's
instances are 128-256 words deep, so the test overrides DEPTH (and W) through Verilator parameters
to reach full and empty every few cycles. Every kernel test exercises the kernel's own instances.
"""
from __future__ import annotations

import shutil

import pytest

from gen.spec import preset
from test_hostpy_helpers import generated_spec


@pytest.mark.parametrize("depth,width", [(4, 16)])
def test_cocotb_fifo(depth, width):
    from sim.runner import run_tests
    if shutil.which("verilator") is None:
        pytest.fail("verilator is not on PATH: run the suite through `make test` (scripts/setup.sh installs it)")
    out = generated_spec(preset("sat_2x8"))
    run_tests(out, "sat_fifo", "sim.tb_fifo", sources=[out / "rtl" / "sat_fifo.sv"],
              parameters={"DEPTH": depth, "W": width})
