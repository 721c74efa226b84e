"""Yosys synth_xilinx on the generated RTL: DSPs inferred, no latches, integer resource figures.

Kept small for CI (the sat_2x8 PE, its dense-baseline PE and a 2 x 2 array); `make synth` runs the
full set (PE, array, core, dense PE) of an architecture.
"""
from __future__ import annotations

import pytest

from gen.spec import make_spec, preset, spec_to_dict
from gen.synth import SynthError, main, resources, synth_targets


def test_resource_counting():
    cells = {"LUT3": 2, "LUT6": 5, "SRLC32E": 1, "FDRE": 7, "FDSE": 1, "DSP48E2": 2, "RAMB36E2": 1,
             "RAMB18E2": 1, "CARRY4": 3, "URAM288": 2}
    assert resources(cells) == {"lut": 8, "ff": 8, "dsp": 2, "bram": 3, "uram": 2}
    assert resources({"URAM288": 4})["uram"] == 4


def test_pe_and_small_array(tmp_path):
    """The sparse PE infers one DSP48E2 per multiplier, costs more LUTs than the dense PE with the
    same multipliers (the M:1 muxes), and a 2 x 2 array scales the DSPs by 4; no latches anywhere
    (synth_targets raises SynthError on a latch or on a design without DSPs)."""
    spec = preset("sat_2x8")
    small = make_spec(**{**spec_to_dict(spec), "name": "sat_2x8_2x2", "rows": 2, "cols": 2})
    got = synth_targets(spec, ["pe", "dense_pe"], tmp_path / "full")
    got.update({"array": synth_targets(small, ["array"], tmp_path / "small")["array"]})
    for target, res in got.items():
        for key in ("lut", "ff", "dsp", "bram"):
            assert isinstance(res[key], int) and res[key] >= 0, (target, key)
        assert not any(t.startswith("LD") for t in res["cells"]), target
    assert got["pe"]["dsp"] == got["dense_pe"]["dsp"] >= 1
    assert got["pe"]["dsp"] <= spec.n                      # int8: at most one DSP per multiplier
    assert got["array"]["dsp"] == small.rows * small.cols * got["pe"]["dsp"]
    # every PE instance counted (stat multiplies the kept hierarchy out), not each module once
    assert got["array"]["ff"] >= small.rows * small.cols * got["pe"]["ff"] > 0
    assert got["pe"]["lut"] > got["dense_pe"]["lut"]


def test_bad_target_and_missing_output(tmp_path):
    with pytest.raises(SynthError, match="unknown synth target"):
        synth_targets(preset("sat_2x8"), ["nope"], tmp_path)
    assert main(["--out", str(tmp_path / "missing")]) == 1


def test_latch_is_refused(tmp_path):
    """The latch guard works: a deliberately latching module is rejected."""
    from gen.synth import synth_module
    src = tmp_path / "latchy.sv"
    src.write_text("module latchy(input wire en, input wire d, output logic q);\n"
                   "  always_latch if (en) q = d;\nendmodule\n")
    with pytest.raises(SynthError, match="latch"):
        synth_module([src], "latchy", tmp_path)
