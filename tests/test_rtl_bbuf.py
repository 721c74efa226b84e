"""sat_bbuf, the ping-pong B reuse buffer of the RTL kernel: structure, lint, its cocotb unit bench.

The unit bench (sim/tb_bbuf.py) runs on a spec with tiny banks (abuf_depth = 4) so that full banks,
bank switches and the streaming fallback all happen in a few hundred cycles. The whole kernel with
those banks (tb_kernel's functional tests: column tiles deeper than a bank streamed, the others
reused, back-to-back jobs, reset mid-job) is one more Verilator build of sat_kernel (1-2 min): it
runs in `make sim-bbuf` (SATGEN_BBUF_KERNEL=1), not in CI; in CI the sat_2x8 kernel's own test_gemms
covers reuse, the bank switch and one column tile deeper than its 512-record banks
(tests/test_rtl.py), and every kernel job checks the words B's master read (once per call when
reused, once per row tile when streamed).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from gen.render import render_files
from gen.spec import make_spec, preset, spec_to_dict
from test_hostpy_helpers import generated_spec

SMALL_DEPTH = 4


def small_spec(arch: str = "sat_2x8", depth: int = SMALL_DEPTH):
    return make_spec(**{**spec_to_dict(preset(arch)), "name": f"{arch}_abuf{depth}", "abuf_depth": depth})


generated = generated_spec


def _verilator() -> str:
    exe = shutil.which("verilator")
    if exe is None:
        pytest.fail("verilator is not on PATH: run the suite through `make test` (scripts/setup.sh installs it)")
    return exe


def test_bbuf_follows_the_spec():
    """The buffer is in the filelist before the kernel, sized by the spec, between B's unpacker and the beat join."""
    for arch in ("sat_2x8", "dense", "sat_1x16", "sat_2x8_kv260"):
        spec = preset(arch)
        files = render_files(spec)
        names = [ln for ln in files["rtl/filelist.f"].decode().splitlines() if ln and not ln.startswith("//")]
        assert names.index("sat_bbuf.sv") < names.index("sat_kernel.sv")
        bbuf = files["rtl/sat_bbuf.sv"].decode()
        rec = spec.cols * spec.m * spec.mem_data_bits
        assert re.search(rf"parameter int RB\s*=\s*{rec},", bbuf) and re.search(
            rf"parameter int DEPTH\s*=\s*{spec.abuf_depth},", bbuf), arch
        kernel = files["rtl/sat_kernel.sv"].decode()
        assert f"sat_bbuf #(.RB({rec}), .DEPTH({spec.abuf_depth})" in kernel
        assert ".in_data   (gbu_rec)" in kernel and ".out_data  (gb_rec)" in kernel
        seq = files["rtl/sat_seq.sv"].decode()
        assert f"job_b_reuse <= 32'(job_g) <= 32'd{spec.abuf_depth};" in seq


def test_small_bank_spec_lints(tmp_path):
    spec = small_spec()
    files = render_files(spec)
    names = [ln for ln in files["rtl/filelist.f"].decode().splitlines() if ln and not ln.startswith("//")]
    for n in names:
        (tmp_path / n).write_bytes(files[f"rtl/{n}"])
    for top in ("sat_kernel", "sat_bbuf"):
        r = subprocess.run([_verilator(), "--lint-only", "-Wall", "--top-module", top, *names], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "%Warning" not in r.stderr, r.stderr


def test_cocotb_bbuf():
    """sim/tb_bbuf.py on 4-record banks: replays, bank switches, fallback, full rate, reset."""
    from sim.runner import run_tests
    _verilator()
    run_tests(generated(small_spec()), "sat_bbuf", "sim.tb_bbuf")


@pytest.mark.skipif(os.environ.get("SATGEN_BBUF_KERNEL", "") != "1",
                    reason="the kernel on 4-record B banks is one more sat_kernel build: make sim-bbuf")
@pytest.mark.parametrize("arch", ["sat_2x8", "dense", "sat_1x16"])
def test_cocotb_kernel_small_banks(arch):
    """The whole kernel with 4-record B banks: most GEMMs of tb_kernel stream B (G > 4), the small ones reuse it."""
    from sim.run import KERNEL_FUNCTIONAL_TESTS, TESTBENCHES
    from sim.runner import run_tests
    _verilator()
    tests = [t for t in KERNEL_FUNCTIONAL_TESTS if t in ("test_gemms", "test_extremes_and_ties", "test_reset_mid_job")]
    run_tests(generated(small_spec(arch)), "sat_kernel", TESTBENCHES["sat_kernel"], testcase=tests)
