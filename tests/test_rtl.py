"""Generated SystemVerilog: lint, structure, cocotb regression on Verilator, cycle formula.

The cocotb testbenches (sim/tb_*.py) compare every output bit-exactly with hostpy's golden model;
here each (preset, module) pair is one pytest item, so pytest-xdist spreads the Verilator builds.
Builds are cached per RTL text under build/rtl_tests/<arch>/work/sim_build/ across runs.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gen.render import render_files
from gen.spec import make_spec, preset, spec_to_dict
from sim.cycles import PRUNE_STAGES, beats_per_tile, core_cycles, prune_beats, prune_cycles
from test_hostpy_helpers import generated_spec

CI_PRESETS = ["sat_2x8", "sat_2x4", "sat_1x16", "dense"]
LINT_PRESETS = CI_PRESETS + ["sat_1x4", "sat_4x8", "sat_2x8_int16", "sat_2x8_kv260"]
# Module testbenches per CI preset: one Verilator build each (~10 s CPU). sat_2x4 and sat_1x16 run
# their core (which contains their PE and array: bit-exact GEMMs up to K = max_k) and their
# pruning unit; their module-level PE/array benches run in `make sim` (sim.run), with the rest.
CI_MODULES = {
    "sat_2x8": ["sat_pe", "sat_array", "sat_prune", "sat_core", "sat_kernel"],
    "dense": ["sat_pe", "sat_array", "sat_core", "sat_kernel"],
    "sat_2x4": ["sat_prune", "sat_core", "sat_kernel"],
    "sat_1x16": ["sat_prune", "sat_core"],
}
# Kernel tests per CI preset where CI runs only part of KERNEL_FUNCTIONAL_TESTS: sat_2x4's kernel is in CI
# for PRUNE with M != rows (the BP copy from R x R blocks of W) and its refusals; its GEMMs, and the PRUNE
# of sat_1x16 / sat_2x8_kv260 (M = 2 x rows), run in `make sim`.
CI_KERNEL_TESTS = {"sat_2x4": ["test_prune", "test_bad_registers"]}


def _verilator() -> str:
    exe = shutil.which("verilator")
    if exe is None:
        pytest.fail("verilator is not on PATH: run the suite through `make test` (scripts/setup.sh installs it)")
    return exe


def generated(arch: str) -> Path:
    """build/rtl_tests/<arch>, generated once (locked: xdist workers share it)."""
    return generated_spec(preset(arch))


def _rtl_files(files: dict[str, bytes]) -> list[str]:
    return [ln for ln in files["rtl/filelist.f"].decode().splitlines() if ln and not ln.startswith("//")]


# ---- structure -------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", LINT_PRESETS)
def test_lint_clean(arch, tmp_path):
    """verilator --lint-only -Wall on the whole core: no warnings, no waivers beyond the commented ones."""
    files = render_files(preset(arch))
    names = _rtl_files(files)
    for n in names:
        (tmp_path / n).write_bytes(files[f"rtl/{n}"])
    for top in ["sat_kernel", "sat_core"] + (["sat_prune"] if "sat_prune.sv" in names else []):
        r = subprocess.run([_verilator(), "--lint-only", "-Wall", "--top-module", top, *names], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "%Warning" not in r.stderr, f"{arch}/{top} lint:\n{r.stderr}"
    waivers = [ln for n in names for ln in files[f"rtl/{n}"].decode().splitlines() if "lint_off" in ln]
    assert all("//" in w for w in waivers), f"unexplained waivers: {waivers}"


def test_one_module_per_file_and_filelist():
    for arch in ("sat_2x8", "dense"):
        spec = preset(arch)
        files = render_files(spec)
        names = _rtl_files(files)
        assert names[-1] == "sat_kernel.sv" and "sat_core.sv" in names
        for n in names:
            text = files[f"rtl/{n}"].decode()
            assert text.count("\nmodule ") == 1 and f"\nmodule {n[:-3]} " in text, n
        # The dense baseline has no pruning unit and no index ports.
        assert ("sat_prune.sv" in names) == spec.sparse
        assert ("w_idx" in files["rtl/sat_pe.sv"].decode()) == spec.sparse


def test_rtl_follows_the_spec():
    """Widths come from the spec: a custom spec changes exactly the generated parameters."""
    base = preset("sat_2x8")
    custom = make_spec(**{**spec_to_dict(base), "name": "custom", "n": 3, "m": 16, "rows": 3, "cols": 5,
                          "data_bits": 12, "acc_bits": 40, "max_k": 1024})
    pe = render_files(custom)["rtl/sat_pe.sv"].decode()
    for param, value in (("N", custom.n), ("D", custom.data_bits), ("A", custom.acc_bits), ("M", custom.m),
                         ("IB", custom.idx_bits)):
        assert re.search(rf"parameter int {param}\s*=\s*{value},", pe), (param, value)
    core = render_files(custom)["rtl/sat_core.sv"].decode()
    for param, value in (("R", custom.rows), ("C", custom.cols), ("MAX_K", custom.max_k)):
        assert re.search(rf"parameter int {param}\s*=\s*{value},", core), (param, value)
    assert render_files(custom) == render_files(custom)          # deterministic


@pytest.mark.parametrize("arch", ["sat_2x8"])
def test_custom_spec_lints(arch, tmp_path):
    """Odd widths (int12 in int16 containers, 40-bit accumulators, N = 3) lint clean too."""
    spec = make_spec(**{**spec_to_dict(preset(arch)), "name": "odd", "n": 3, "m": 16, "rows": 3, "cols": 5,
                        "data_bits": 12, "acc_bits": 40, "max_k": 1024})
    files = render_files(spec)
    names = _rtl_files(files)
    for n in names:
        (tmp_path / n).write_bytes(files[f"rtl/{n}"])
    for top in ("sat_kernel", "sat_core", "sat_prune"):
        r = subprocess.run([_verilator(), "--lint-only", "-Wall", "--top-module", top, *names], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr
    # Its result beat (1 row x 5 x int64 = 320 bits) is not one 512-bit word: the kernel gathers tiles.
    assert "sat_pack #" in files["rtl/sat_kernel.sv"].decode()
    assert "sat_pack #" not in render_files(preset(arch))["rtl/sat_kernel.sv"].decode()


# ---- the cycle formula (pure Python; measured == formula is checked in sim/tb_core.py) ----------

@pytest.mark.parametrize("fields,want", [
    # 6 rows of 4 x 32-bit sums = 128 bits each: 2 fit a 256-bit word, 3 (the next divisor) do not.
    ({"rows": 6, "cols": 4, "axi_bits": 256}, 2),
    ({"rows": 6, "cols": 4, "axi_bits": 512}, 3),       # 6 x 128 > 512, 3 x 128 <= 512
    ({"rows": 5, "cols": 4, "axi_bits": 512}, 1),       # 5 x 128 > 512: only 1 divides 5 and fits
    ({"rows": 2, "cols": 32, "axi_bits": 512}, 1),      # a row (1024 bits) is wider than the word
])
def test_drain_rows_fill_one_axi_word(fields, want):
    s = make_spec(name="t", **fields)
    assert s.drain_rows == want
    render_files(s)                                     # the templates accept it

def test_cycle_formula_shape():
    s = preset("sat_2x8")
    assert beats_per_tile(s, "SPARSE", 17) == 3 and beats_per_tile(s, "DENSE", 17) == 9
    # Two output rows per result beat: a 2 x 8 x 32-bit beat fills the 512-bit m_axi word.
    assert s.drain_rows == 2 and s.drain_rows * s.cols * s.mem_acc_bits == s.axi_bits
    e = s.rows // s.drain_rows
    # One tile: B beats, one cycle to the shadow bank, E = R / drain_rows result beats.
    assert core_cycles(s, "SPARSE", 8, 1) == 1 + 1 + e
    # Long tiles: every extra tile costs exactly B cycles (drain hidden) ...
    k = 64 * s.m
    b = beats_per_tile(s, "SPARSE", k)
    assert core_cycles(s, "SPARSE", k, 5) - core_cycles(s, "SPARSE", k, 4) == b
    # ... B = R (K = R*M, the BP of 64-channel layers on 8 x 8 2:8) is no longer drain bound ...
    assert core_cycles(s, "SPARSE", s.rows * s.m, 5) - core_cycles(s, "SPARSE", s.rows * s.m, 4) == s.rows
    # ... shorter tiles are: E + 2 cycles each.
    assert core_cycles(s, "SPARSE", s.m, 5) - core_cycles(s, "SPARSE", s.m, 4) == e + 2
    # One row per beat where a row already fills the m_axi word.
    narrow = preset("sat_2x8_kv260")
    assert narrow.drain_rows == 1
    assert core_cycles(narrow, "SPARSE", narrow.m, 5) - core_cycles(narrow, "SPARSE", narrow.m, 4) == narrow.rows + 2
    # The sparse/dense ratio tends to M/N.
    ratio = core_cycles(s, "DENSE", 4096, 16) / core_cycles(s, "SPARSE", 4096, 16)
    assert 0.99 * s.m / s.n < ratio <= s.m / s.n
    # Runtime N: a group of n kept weights is ceil(n / N) beats; DENSE ignores n.
    assert [beats_per_tile(s, "SPARSE", 17, n) for n in range(1, s.m)] == [3, 3, 6, 6, 9, 9, 12]
    assert beats_per_tile(s, "DENSE", 17, 5) == 9
    assert core_cycles(s, "SPARSE", k, 5, 7) - core_cycles(s, "SPARSE", k, 4, 7) == 4 * b
    assert core_cycles(s, "SPARSE", k, 4, s.n) == core_cycles(s, "SPARSE", k, 4)
    assert prune_cycles(s, 10 * s.cols, 3) == 2 * 10 + PRUNE_STAGES
    for bad in (0, s.m):
        with pytest.raises(ValueError, match="n must be"):
            core_cycles(s, "SPARSE", k, 1, bad)
    with pytest.raises(ValueError, match="dense baseline"):
        core_cycles(preset("dense"), "SPARSE", 8, 1)
    with pytest.raises(ValueError, match="k must be"):
        core_cycles(s, "DENSE", 0, 1)
    with pytest.raises(ValueError, match="tiles"):
        core_cycles(s, "DENSE", 8, 0)


def test_prune_cycle_formula_shape():
    """PRUNE: C groups per beat, one beat per cycle, plus sat_prune's pipeline (measured in tb_core)."""
    s = preset("sat_2x8")
    assert prune_beats(s, 1) == 1 and prune_beats(s, s.cols) == 1 and prune_beats(s, s.cols + 1) == 2
    assert prune_cycles(s, 1) == 1 + PRUNE_STAGES
    assert prune_cycles(s, 10 * s.cols) - prune_cycles(s, 9 * s.cols) == 1
    assert "sat_prune" in render_files(s)["rtl/sat_core.sv"].decode()       # the core instantiates the lanes
    with pytest.raises(ValueError, match="dense baseline"):
        prune_cycles(preset("dense"), 8)
    with pytest.raises(ValueError, match="groups"):
        prune_cycles(s, 0)


# ---- cocotb on Verilator ---------------------------------------------------------------------

@pytest.mark.parametrize("arch,module", [(a, m) for a, mods in CI_MODULES.items() for m in mods])
def test_cocotb(arch, module):
    """The module's cocotb testbench (CI size): bit-exact vs hostpy with random idle/backpressure."""
    from sim.run import CORE_FUNCTIONAL_TESTS, KERNEL_FUNCTIONAL_TESTS, TESTBENCHES
    from sim.runner import run_tests

    _verilator()
    tests = {"sat_core": CORE_FUNCTIONAL_TESTS, "sat_kernel": CI_KERNEL_TESTS.get(arch, KERNEL_FUNCTIONAL_TESTS)}.get(module)
    run_tests(generated(arch), module, TESTBENCHES[module], testcase=tests)


@pytest.mark.parametrize("arch", ["sat_2x8", "dense"])
def test_cycles_report(arch):
    """make sim's measurement: a multi-tile GEMM without stalls reaches >= 0.95 M/N (dense: 1)."""
    from sim.run import benchmark_gemm, measure_cycles

    _verilator()
    spec = preset(arch)
    report = measure_cycles(generated(arch), spec, benchmark_gemm(spec), seed=None)
    assert report["sparse_cycles"] == report["sparse_formula"]
    assert report["dense_cycles"] == report["dense_formula"]
    assert report["ratio"] == report["dense_cycles"] / report["sparse_cycles"]
    ideal = spec.m / spec.n if spec.sparse else 1.0
    assert report["ratio"] >= 0.95 * ideal


@pytest.mark.parametrize("arch", ["sat_2x8", "dense"])
def test_kernel_cycles_report(arch, monkeypatch):
    """sat_kernel end to end (ap_start -> ap_done) on the core benchmark's GEMM, no pauses: the core's own
    cycle count plus a fixed per-job overhead (the first read's latency, the last write's B response and a
    few cycles of setup and draining), the same in every mode: the memory side adds nothing per beat."""
    from gen.memmodel import MemoryModel
    from sim.run import benchmark_gemm, measure_kernel_cycles

    _verilator()
    spec = preset(arch)
    gemm = benchmark_gemm(spec)
    # runtime N: SPARSE and PRUNE at n = 5 (3 records per group on 2:8 hardware) and at the spec's n
    monkeypatch.setenv("SATGEN_KERNEL_CYCLES_NS", "5")
    report = measure_kernel_cycles(generated(arch), spec, [gemm], read_latency=64)
    mem = MemoryModel(**{k: v for k, v in report["memory"].items() if not k.endswith("_note")})
    assert mem.read_latency == 64 and mem.stall_rate == 0.0
    tiles = -(-gemm[0] // spec.rows) * -(-gemm[2] // spec.cols)
    overhead = {}
    for job in report["jobs"]:
        if job["mode"] != "PRUNE":
            overhead[(job["mode"], job["n"])] = job["cycles"] - core_cycles(spec, job["mode"], gemm[1], tiles, job["n"])
    if spec.sparse:
        assert sorted(n for (mode, n) in overhead if mode == "SPARSE") == sorted({5, spec.n}), overhead
        assert report["jobs"][[j["mode"] for j in report["jobs"]].index("SPARSE") + 1]["n"] == spec.n  # last SPARSE
        by = {(j["mode"], j["n"]): j["cycles"] for j in report["jobs"] if j["mode"] != "PRUNE"}
        assert report["dense_over_sparse"] == round(by[("DENSE", None)] / by[("SPARSE", spec.n)], 4)
        prune = {j["n"]: j["cycles"] for j in report["jobs"] if j["mode"] == "PRUNE"}
        # PRUNE at n = 5 emits 3 records per group: 2 more output beats per input beat than at n = 2, plus a
        # tail that depends on where the testbench placed the output buffers (the last write burst of each
        # copy ends at a 4 KiB boundary or after 64 beats: up to 64 cycles of difference)
        ff_bp_beats = 2 * -(-gemm[0] // spec.rows) * -(-gemm[1] // spec.m)
        assert abs(prune[5] - prune[spec.n] - 2 * ff_bp_beats) <= 64, prune
    assert overhead and all(mem.read_latency + mem.write_latency < o <= mem.read_latency + mem.write_latency + 64
                            for o in overhead.values()), overhead
    assert max(overhead.values()) - min(overhead.values()) <= 8, overhead


def test_dense_over_sparse_takes_the_spec_n_sparse_job():
    """The kernel bench runs SPARSE at several n: the ratio uses the SPARSE job at the spec's n, in any order."""
    from sim.run import dense_over_sparse

    g = [64, 2048, 64]
    jobs = [{"mode": "SPARSE", "n": 2, "gemm": g, "cycles": 1000},
            {"mode": "SPARSE", "n": 7, "gemm": g, "cycles": 4000},     # last SPARSE job, not the spec's n
            {"mode": "DENSE", "n": None, "gemm": g, "cycles": 4000},
            {"mode": "SPARSE", "n": 2, "gemm": [16, 1024, 16], "cycles": 9}]
    assert dense_over_sparse(jobs, g, 2) == 4.0
    assert dense_over_sparse(jobs, tuple(g), 7) == 1.0
    assert dense_over_sparse(list(reversed(jobs)), g, 2) == 4.0
    assert dense_over_sparse(jobs, g, 5) is None                      # no SPARSE job at that n
    assert dense_over_sparse(jobs[:2], g, 2) is None                  # no DENSE job
    with pytest.raises(ValueError, match="differing cycles"):
        dense_over_sparse(jobs + [{"mode": "SPARSE", "n": 2, "gemm": g, "cycles": 1001}], g, 2)


def test_hls_exported_rtl():
    """The kernel testbench on Vitis HLS's exported RTL: runs only where Vitis HLS produced it."""
    import sim.tb_hls_kernel  # noqa: F401  (the testbench at least imports everywhere)
    from sim.hls_rtl import run, unavailable_reason

    out = generated("sat_2x8")
    reason = unavailable_reason(out)
    if reason:
        pytest.skip(reason)
    run(out)
