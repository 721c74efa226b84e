"""The VCU1525-sized presets chosen by the sweep (sat_2x8_vu9p and its dense twin dense_vu9p).

CI keeps them cheap: generation (every preset test in test_spec/test_cli/test_hls_templates),
the C-simulation library with one small GEMM per mode (test_csim.py's test_library_*), and here
one short RTL simulation of the generated core per mode plus the committed synthesis report
checked against the spec and the sweep's rule. `make csim/sim/synth ARCH=sat_2x8_vu9p` run the rest.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gen.spec import preset, spec_to_dict
from gen.sweep import PART_LIMITS, RESOURCES, synth_key

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def test_presets_are_twins():
    s, d = preset("sat_2x8_vu9p"), preset("dense_vu9p")
    assert (s.n, s.m, s.sparse) == (2, 8, True) and not d.sparse
    strip = ("name", "sparse")
    assert {k: v for k, v in spec_to_dict(s).items() if k not in strip} == \
        {k: v for k, v in spec_to_dict(d).items() if k not in strip}
    assert s.fpga_part.startswith("xcvu9p")


def test_committed_synth_report_is_this_preset_and_within_budget():
    """docs/synth_*_vu9p.json (`make vu9p-reports`): both kernels as the generator emits them now, within budget."""
    rep = json.loads((DOCS / "synth_sat_2x8_vu9p.json").read_text())
    spec = preset("sat_2x8_vu9p")
    assert rep["arch"] == "sat_2x8_vu9p" and rep["spec"] == spec_to_dict(spec)
    assert rep["synth_top"] == "sat_kernel" and rep["bram"] + rep["uram"] > 0      # the whole kernel, buffers in RAM
    # The report is of the RTL this generator emits for the preset now: same synthesis key.
    assert rep["synth_key"] == synth_key(spec, "yosys"), "RTL changed: rerun make sweep and recommit docs/"
    lim = PART_LIMITS["xcvu9p"]
    for k in RESOURCES:
        assert 0 <= rep[k] <= 0.7 * lim[k], k
    assert 0 <= rep["dsp"] - spec.rows * spec.cols * spec.n <= 16      # + the kernel sequencer's size products
    assert sum(n for t, n in rep["cells"].items() if t.startswith("LUT")) <= rep["lut"]
    dense = json.loads((DOCS / "synth_dense_vu9p.json").read_text())
    assert dense["arch"] == "dense_vu9p" and dense["synth_key"] == synth_key(preset("dense_vu9p"), "yosys")
    # same multipliers, no index muxes; the sparse kernel's sequencer has more size products (PRUNE)
    assert 0 < dense["dsp"] - spec.rows * spec.cols * spec.n <= rep["dsp"] - spec.rows * spec.cols * spec.n
    assert dense["lut"] < rep["lut"]
    sweep = json.loads((DOCS / "sweep_vu9p.json").read_text())
    best = next(p for p in sweep["points"] if p["name"] == sweep["best_within_budget"])
    assert {k: v for k, v in best["spec"].items() if k != "name"} == \
        {k: v for k, v in spec_to_dict(spec).items() if k != "name"}


@pytest.mark.parametrize("arch", ["sat_2x8_vu9p"])
def test_short_rtl_simulation(arch, tmp_path):
    """One small GEMM per mode (SPARSE and DENSE, one output tile) on the generated 32x64 core under
    cocotb + Verilator, bit-exact against hostpy (the testbench checks) and at the formula's cycles."""
    from gen.render import generate
    from sim.run import measure_cycles
    if shutil.which("verilator") is None:
        pytest.fail("verilator is not on PATH: run the suite through `make test` (scripts/setup.sh installs it)")
    spec = preset(arch)
    out = REPO / "build" / "rtl_tests" / arch
    generate(spec, out, log=lambda *_: None)
    rep = measure_cycles(out, spec, (spec.rows, 4 * spec.m, spec.cols), seed=None)
    assert rep["sparse_cycles"] == rep["sparse_formula"]
    assert rep["dense_cycles"] == rep["dense_formula"]
