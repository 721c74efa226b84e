"""The design-space sweep (gen/sweep.py): model + Yosys synthesis per point on a Dask LocalCluster.

The end-to-end test runs `make sweep` on a tiny grid (three 4x4 points, two synthesis runs: the two
depths of 2:8 share one RTL text) and checks sweep.json against the spec and against gen.synth run
directly; a second run must redo nothing. The rest checks the pieces and the error paths.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gen import sweep, synth
from gen.spec import make_spec, preset, spec_to_dict
from gen.sweep import choose, fit_report, grid_points, main, pareto_front, parse_vivado_utilization, synth_key

REPO = Path(__file__).resolve().parent.parent
# The `swept` fixture (a real `make sweep` with two kernel syntheses, ~2.5 min) is per worker: keep this
# module's tests on one xdist worker (`make test` runs --dist loadgroup) so it runs once, not twice.
pytestmark = pytest.mark.xdist_group("sweep")
GRID = ["--arrays", "4x4", "--ratios", "2:8,2:4", "--depths", "256,512", "--network", "vgg16_cifar", "--batch", "1",
        "--workers", "2"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    env = {k: v for k, v in os.environ.items() if k != "MAKEFLAGS"}
    r = subprocess.run(["make", "-s", "sweep", f"SWEEP_ARGS={' '.join(GRID + ['--out', str(out)])}"], cwd=REPO,
                       capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def test_make_sweep_writes_points_with_model_and_synthesis(swept):
    out, log = swept
    # four points, two RTL texts: the depths only size buffers the synthesized top may not have
    assert "LocalCluster(2 workers)" in log
    data = json.loads((out / "reports" / "sweep.json").read_text())
    assert (out / "reports" / "sweep_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pts = {p["name"]: p for p in data["points"]}
    assert set(pts) == {f"sweep_4x4_{nm}_d{d}_axi512" for nm in ("2of8", "2of4") for d in (256, 512)}
    from gen.perf import step_cost
    for p in pts.values():
        spec = make_spec(**p["spec"])
        for k in sweep.RESOURCES:
            assert isinstance(p[k], int) and p[k] >= 0
        # one DSP48E2 per multiplier, as Yosys maps it, plus (kernel only) the sequencer's per-job size
        # products (docs/RTL.md: 15 on sat_2x8)
        extra = p["dsp"] - spec.rows * spec.cols * spec.n
        assert extra == 0 if p["synth_top"] == "sat_core" else 0 < extra <= 16
        assert p["synth_top"] in ("sat_core", "sat_kernel") and p["synth_tool"] == "yosys"
        if p["synth_top"] == "sat_core":
            assert p["bram"] == 0 and p["uram"] == 0             # the core has no operand buffers
        else:
            assert p["bram"] + p["uram"] > 0                     # the kernel's DMA FIFOs infer block RAM
        assert p["modelled_step_ms"] == pytest.approx(1e3 * step_cost(spec, "vgg16_cifar", bdwp=True,
                                                                            batch=1).seconds())
        assert p["fits_budget"] is True                           # 32 DSP on a VU9P
    n_synth = len({p["synth_key"] for p in pts.values()})
    assert f"{n_synth} synthesis run(s) with yosys" in log and n_synth in (2, 4)
    assert pts["sweep_4x4_2of8_d256_axi512"]["lut"] > pts["sweep_4x4_2of4_d256_axi512"]["lut"]   # 8:1 vs 4:1 muxes
    assert set(data["pareto"]) <= set(pts) and data["pareto"]
    assert data["best_within_budget"] in pts and data["best_within_budget"].startswith("sweep_4x4_2of8")
    assert data["synth_what"].startswith("synthesized (Yosys") and "no place-and-route" in data["synth_what"]
    assert data["part_limits"]["dsp"] == 6840 and data["budget"] == 0.7


def test_points_sharing_rtl_share_one_synthesis_and_match_gen_synth(swept, tmp_path):
    out, _ = swept
    d256 = json.loads((out / "points" / "sweep_4x4_2of8_d256_axi512.json").read_text())
    d512 = json.loads((out / "points" / "sweep_4x4_2of8_d512_axi512.json").read_text())
    if d256["synth_top"] == "sat_core":
        assert d256["synth_key"] == d512["synth_key"]
        assert {k: d256[k] for k in sweep.RESOURCES} == {k: d512[k] for k in sweep.RESOURCES}
    # The cached figures are what gen.synth reports for the same spec's kernel top.
    spec = make_spec(**d256["spec"])
    target = "core" if d256["synth_top"] == "sat_core" else "kernel"
    direct = synth.synth_targets(spec, [target], tmp_path, log=lambda *_: None)[target]
    assert {k: direct.get(k, 0) for k in sweep.RESOURCES} == {k: d256[k] for k in sweep.RESOURCES}


def test_rerun_redoes_nothing(swept):
    out, _ = swept
    args = GRID + ["--out", str(out)]
    before = json.loads((out / "reports" / "sweep.json").read_text())
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "4 finished before (not redone), 0 to model, 0 synthesis run(s)" in r.output
    assert "LocalCluster" not in r.output
    # A lost point file: only its model reruns, its synthesis comes from the cache.
    (out / "points" / "sweep_4x4_2of4_d512_axi512.json").unlink()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "3 finished before (not redone), 1 to model, 0 synthesis run(s)" in r.output
    after = json.loads((out / "reports" / "sweep.json").read_text())
    strip = ("cached", "wall_seconds", "engine")
    assert [{k: v for k, v in p.items() if k not in strip} for p in after["points"]] == \
        [{k: v for k, v in p.items() if k not in strip} for p in before["points"]]


def test_synth_fastest_models_everything_and_synthesizes_the_fastest(swept, tmp_path):
    """--synth-fastest 1: every point modelled, only the fastest of each N:M synthesized (here from the
    synthesis cache of the full run, copied), the rest reported unsynthesized and kept out of the choice."""
    import shutil
    out, _ = swept
    full = json.loads((out / "reports" / "sweep.json").read_text())
    shutil.copytree(out / "cache", tmp_path / "cache")
    r = CliRunner().invoke(main, GRID + ["--out", str(tmp_path), "--synth-fastest", "1", "--no-plot"])
    assert r.exit_code == 0, r.output
    assert "0 synthesis run(s) with yosys (2 from the cache)" in r.output
    data = json.loads((tmp_path / "reports" / "sweep.json").read_text())
    assert data["synthesized"] == "the 1 fastest per N:M by the model"
    pts = {p["name"]: p for p in data["points"]}
    want = {min((p for p in full["points"] if p["spec"]["m"] == m), key=lambda p: (p["modelled_step_ms"], p["name"]))["name"]
            for m in (4, 8)}
    assert {n for n, p in pts.items() if p["synthesized"]} == want
    for n, p in pts.items():
        ref = next(q for q in full["points"] if q["name"] == n)
        assert p["modelled_step_ms"] == ref["modelled_step_ms"]
        if n in want:
            assert {k: p[k] for k in sweep.RESOURCES} == {k: ref[k] for k in sweep.RESOURCES}
        else:
            assert p["lut"] is None and p["synth_top"] is None and "fits_budget" not in p
    assert set(data["pareto"]) <= want and data["best_within_budget"] == full["best_within_budget"]
    assert sweep.fastest_per_ratio(full, 2) == set(pts)          # 2 points per N:M in this grid


def _fixture_pair(full: dict, best: bool):
    """A sparse spec of the fixture's grid (its chosen point, or another 2:8 depth) and its dense twin."""
    import dataclasses
    pts = [p for p in full["points"] if p["spec"]["m"] == 8]
    pick = next(p for p in pts if (p["name"] == full["best_within_budget"]) == best)
    s = make_spec(**{**pick["spec"], "name": "pair_sparse"})
    return s, dataclasses.replace(s, name="pair_dense", sparse=False)


def test_preset_reports_refuse_a_preset_the_sweep_no_longer_chooses(swept, tmp_path):
    import shutil
    from gen.preset_reports import ReportError, write_reports
    out, _ = swept
    full = json.loads((out / "reports" / "sweep.json").read_text())
    shutil.copytree(out / "cache", tmp_path / "out" / "cache")
    s, d = _fixture_pair(full, best=False)
    with pytest.raises(ReportError, match="no longer chooses pair_sparse: it chooses " + full["best_within_budget"]):
        write_reports(s, d, out=tmp_path / "out", docs=tmp_path / "docs", synth_fastest=1, workers=1,
                      network="vgg16_cifar", batch=1, arrays=((4, 4),), depths=(256, 512), log=lambda *_: None)
    assert not (tmp_path / "docs").exists()                  # nothing written


@pytest.mark.skipif(os.environ.get("SATGEN_HEAVY") != "1", reason="one more kernel synthesis (SATGEN_HEAVY=1)")
def test_preset_reports_write_both_kernels(swept, tmp_path):
    import shutil
    from gen.preset_reports import write_reports
    out, _ = swept
    full = json.loads((out / "reports" / "sweep.json").read_text())
    shutil.copytree(out / "cache", tmp_path / "out" / "cache")
    s, d = _fixture_pair(full, best=True)
    write_reports(s, d, out=tmp_path / "out", docs=tmp_path / "docs", synth_fastest=1, workers=1,
                  network="vgg16_cifar", batch=1, arrays=((4, 4),), depths=(256, 512), log=lambda *_: None)
    rs = json.loads((tmp_path / "docs" / "synth_pair_sparse.json").read_text())
    rd = json.loads((tmp_path / "docs" / "synth_pair_dense.json").read_text())
    assert rs["spec"] == spec_to_dict(s) and rs["synth_key"] == synth_key(s, "yosys") and rs["synth_top"] == "sat_kernel"
    assert rd["synth_key"] == synth_key(d, "yosys") and rd["lut"] < rs["lut"]
    macs = s.rows * s.cols * s.n                 # same multipliers; the kernels' sequencers add a few size products
    assert 0 < rd["dsp"] - macs <= rs["dsp"] - macs <= 16
    direct = synth.synth_targets(d, ["kernel"], tmp_path / "direct", log=lambda *_: None)["kernel"]
    assert {k: direct[k] for k in sweep.RESOURCES} == {k: rd[k] for k in sweep.RESOURCES}
    assert rs["fits_budget"] is True and rs["sweep_point"] == full["best_within_budget"]
    swp = json.loads((tmp_path / "docs" / "sweep_sparse.json").read_text())
    assert swp["best_within_budget"] == full["best_within_budget"]


def test_synth_key_follows_the_rtl():
    base = spec_to_dict(preset("sat_2x8"))
    a = make_spec(**{**base, "name": "a", "rows": 4, "cols": 4})
    assert synth_key(a, "yosys") == synth_key(make_spec(**{**base, "name": "b", "rows": 4, "cols": 4}), "yosys")
    assert synth_key(a, "yosys") != synth_key(make_spec(**{**base, "name": "a", "rows": 4, "cols": 8}), "yosys")
    assert synth_key(a, "yosys") != synth_key(a, "vivado")


def _pt(name, ms, **res):
    p = {"name": name, "modelled_step_ms": ms, "spec": {"n": 2, "m": 8}, "synth_top": "sat_core",
         "buffer_ramb18_estimate": 0, **{k: 0 for k in sweep.RESOURCES}}
    p.update(res)
    return p


def test_pareto_fit_and_choice():
    fast = _pt("fast", 10.0, dsp=5000, lut=300_000)
    slow = _pt("slow", 20.0, dsp=1000, lut=100_000)
    worse = _pt("worse", 21.0, dsp=1000, lut=100_000)
    assert [p["name"] for p in pareto_front([fast, slow, worse])] == ["fast", "slow"]
    # while the top is the core, the RAM axis is the spec's buffer estimate
    thrifty = _pt("thrifty", 21.0, dsp=1000, lut=100_000, buffer_ramb18_estimate=-1)
    assert "thrifty" in {p["name"] for p in pareto_front([fast, slow, thrifty])}
    for p in (fast, slow, worse):
        p.update(fit_report(p, "xcvu9p-fsgd2104-2L-e", 0.7))
    assert fast["fits_budget"] is False and fast["device_fraction"]["dsp"] == pytest.approx(5000 / 6840, abs=1e-5)
    assert slow["fits_budget"] is True
    assert choose([fast, slow, worse], 2, 8)["name"] == "slow"
    assert choose([fast, slow, worse], 2, 4) is None
    # The spec's buffer estimate counts while the synthesized top has no buffers.
    big = _pt("big", 5.0, dsp=100, buffer_ramb18_estimate=4000)
    big.update(fit_report(big, "xcvu9p", 0.7))
    assert big["fits_budget"] and not big["fits_budget_with_buffer_estimate"]
    assert fit_report(slow, "xc7z020clg400-1", 0.7)["fits_budget"] is None


def test_grid_skips_invalid_points():
    pts, skipped = grid_points(preset("sat_2x8"), arrays=((4, 4),), ratios=((2, 8), (9, 8)), depths=(256,), axis=(512,))
    assert [p["name"] for p in pts] == ["sweep_4x4_2of8_d256_axi512"]
    assert len(skipped) == 1 and "'n'" in skipped[0]


@pytest.mark.parametrize("args,needle", [
    (["--arrays", "8y8"], "'8y8' is not a valid entry"),
    (["--depths", "0x"], "'0x' is not a valid entry"),
    (["--ratios", "9:8", "--arrays", "4x4", "--depths", "256"], "no valid point"),
    (["--workers", "0"], "must be >= 1"),
    (["--arrays", "4x4", "--depths", "256", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, args, needle):
    out = tmp_path / "sw"
    r = CliRunner().invoke(main, args + ["--out", str(out), "--ratios", "2:8"] if "--ratios" not in args
                           else args + ["--out", str(out)])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert not (out / "reports").exists() and not (out / "points").exists()


def test_vivado_option_without_vivado(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    r = CliRunner().invoke(main, ["--arrays", "4x4", "--depths", "256", "--synth", "vivado", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "vivado" in r.output and "not on PATH" in r.output


def test_vivado_utilization_parser():
    text = """
+----------------------------+--------+-------+-----------+-------+
|          Site Type         |  Used  | Fixed | Available | Util% |
+----------------------------+--------+-------+-----------+-------+
| CLB LUTs*                  |   5000 |     0 |   1182240 |  0.42 |
| CLB LUTs                   |   4321 |     0 |   1182240 |  0.37 |
| CLB Registers              |   2222 |     0 |   2364480 |  0.09 |
| Block RAM Tile             |   12.5 |     0 |      2160 |  0.58 |
| URAM                       |      3 |     0 |       960 |  0.31 |
| DSPs                       |    128 |     0 |      6840 |  1.87 |
"""
    assert parse_vivado_utilization(text) == {"lut": 4321, "ff": 2222, "dsp": 128, "bram": 25, "uram": 3}
    with pytest.raises(sweep.SweepError, match="URAM"):
        parse_vivado_utilization(text.replace("URAM", "XRAM"))


def test_synth_counts_uram_and_picks_the_kernel_top(tmp_path):
    assert synth.resources({"URAM288": 3, "RAMB36E2": 2, "RAMB18E2": 1, "DSP48E2": 4})["uram"] == 3
    assert synth.kernel_target(tmp_path) == ("core", "sat_core")
    (tmp_path / "sat_kernel.sv").write_text("module sat_kernel; endmodule\n")
    assert synth.kernel_target(tmp_path) == ("kernel", "sat_kernel")
