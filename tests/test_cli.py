"""The `satgen` command line and the regmap it writes: presets, spec files, errors that write nothing."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gen.cli import main
from gen.regmap import MODES, kernel_args, regmap
from gen.spec import PRESETS, preset, spec_to_json

REPO = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_and_list():
    r = run("--help")
    assert r.exit_code == 0 and "gen" in r.output and "list" in r.output
    r = run("list")
    assert r.exit_code == 0
    lines = r.output.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(PRESETS)


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "gen", "list"], capture_output=True, text=True, cwd=REPO, check=True)
    assert "sat_2x8" in out.stdout


def test_gen_writes_spec_regmap_manifest(tmp_path):
    out = tmp_path / "o"
    r = run("gen", "--arch", "sat_2x4", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert (out / "spec.json").read_text() == spec_to_json(preset("sat_2x4"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert "spec.json" in manifest["files"] and "regmap.json" in manifest["files"]


def test_gen_from_spec_file_and_written_spec_regenerates_identically(tmp_path):
    spec_file = tmp_path / "mine.toml"
    spec_file.write_text('base = "sat_1x16"\nname = "mine"\nrows = 4\n')
    a, b = tmp_path / "a", tmp_path / "b"
    assert run("gen", "--spec", str(spec_file), "--out", str(a)).exit_code == 0
    assert run("gen", "--spec", str(a / "spec.json"), "--out", str(b)).exit_code == 0
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("content,needle", [
    ('n = 8\nm = 8\n', "spec field 'n'"),
    ('m = 12\n', "spec field 'm'"),
    ('rows = 0\n', "spec field 'rows'"),
    ('widgets = 3\n', "spec field 'widgets'"),
    ('data_bits = 16\nacc_bits = 32\n', "spec field 'acc_bits'"),
    ('board = "de10"\n', "spec field 'board'"),
])
def test_invalid_spec_file_exits_nonzero_and_writes_nothing(tmp_path, content, needle):
    spec_file = tmp_path / "bad.toml"
    spec_file.write_text('name = "bad"\n' + content)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["gen", "--spec", str(spec_file), "--out", str(out)])
    assert r.exit_code == 2
    assert needle in r.output
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]     # no temp dirs left behind


def test_unknown_arch_and_conflicting_options(tmp_path):
    r = CliRunner().invoke(main, ["gen", "--arch", "sat_9x9", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown architecture 'sat_9x9'" in r.output
    assert not (tmp_path / "x").exists()
    r = CliRunner().invoke(main, ["gen", "--arch", "sat_2x8", "--spec", "f.toml"])
    assert r.exit_code != 0 and "either --arch or --spec" in r.output


def test_regeneration_keeps_reports_and_work(tmp_path):
    out = tmp_path / "o"
    assert run("gen", "--arch", "sat_2x8", "--out", str(out)).exit_code == 0
    (out / "reports").mkdir()
    (out / "reports" / "cycles.json").write_text("{}")
    (out / "spec.json").write_text("tampered")                     # forces a real rewrite
    assert run("gen", "--arch", "sat_2x8", "--out", str(out)).exit_code == 0
    assert (out / "reports" / "cycles.json").read_text() == "{}"
    assert (out / "spec.json").read_text() == spec_to_json(preset("sat_2x8"))


@pytest.mark.parametrize("name", list(PRESETS))
def test_regmap_offsets_follow_vitis_layout(name):
    spec = preset(name)
    rm = regmap(spec)
    args = kernel_args(spec)
    assert [r["name"] for r in rm["args"]] == [a.name for a in args]
    offset = 0x10
    for reg in rm["args"]:
        assert reg["offset"] == offset
        offset += 0x0C if reg["kind"] == "ptr" else 0x08
    assert rm["registers_end"] == offset
    # Vitis's address range: the power of two covering every register
    assert rm["address_range"] & (rm["address_range"] - 1) == 0 and rm["address_range"] // 2 < offset <= rm["address_range"]
    if spec.sparse:
        assert rm["modes"] == MODES and rm["passes"]["BP"] == "SPARSE" and rm["passes"]["WU"] == "DENSE"
        assert {"a_idx", "ff_val", "ff_idx", "bp_val", "bp_idx"} <= {r["name"] for r in rm["args"]}
    else:
        assert rm["modes"] == {"DENSE": MODES["DENSE"]}
        assert not any(r["name"].endswith("_idx") for r in rm["args"])
    assert rm["operand"]["mem_data_bits"] == spec.mem_data_bits and rm["nm"]["idx_bits"] == spec.idx_bits


def test_kernel_vlnv_is_one_fact():
    """The PYNQ driver binds to exactly the IP identity regmap.json gives and hls.tcl exports."""
    from hostpy.backends.pynq_backend import SatKernelDriver
    rm = regmap(preset("sat_2x8_kv260"))
    assert SatKernelDriver.bindto == [rm["vlnv"]]
    assert rm["vlnv"].split(":")[2] == rm["kernel"]
