"""`make sim`: the cocotb + Verilator regression of one generated architecture, and its cycle report.

    python -m sim.run --out build/sat_2x8 [--quick] [--gemm M,K,N] [--seed S]

Runs the testbench of every module in ``rtl/filelist.f`` (the full regression unless --quick),
then the core's cycle measurement: one GEMM of several output tiles in sparse and in dense mode
without stalls. Writes ``<out>/reports/cycles.json`` (keys: gemm, tiles, sparse_cycles,
dense_cycles, ratio = dense/sparse, ideal_ratio, the formula's values, sim throughput), then the
whole kernel's (sat_kernel) end-to-end cycles, ap_start to ap_done, of the benchmark GEMM and of
[64, 2048, 64] with a fixed 64-cycle read latency and no pauses: ``<out>/reports/kernel_cycles.json``
(jobs [{mode, gemm, cycles}], memory model, dense_over_sparse, sim throughput).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from gen.spec import ArchSpec, SpecError, load_spec

from .runner import SimError, rtl_sources, run_tests

__all__ = ["TESTBENCHES", "benchmark_gemm", "run_regression", "measure_cycles", "kernel_gemms", "dense_over_sparse", "measure_kernel_cycles", "main"]

# toplevel module -> cocotb test module
TESTBENCHES = {"sat_pe": "sim.tb_pe", "sat_array": "sim.tb_array", "sat_prune": "sim.tb_prune",
               "sat_core": "sim.tb_core", "sat_kernel": "sim.tb_kernel"}
# The kernel's memory-side modules (sat_fifo, sat_axi_rd, sat_axi_wr, sat_unpack, sat_axil_ctrl, sat_seq)
# are verified inside sat_kernel by its system testbench; they have no bench of their own.
KERNEL_FUNCTIONAL_TESTS = ["test_gemms", "test_extremes_and_ties", "test_interrupt_and_control", "test_auto_restart",
                           "test_bad_registers", "test_reset_mid_job", "test_prune"]
# dense_over_sparse of reports/kernel_cycles.json: this GEMM, no random pauses, this read latency (cycles).
KERNEL_RATIO_GEMM = (64, 2048, 64)
KERNEL_READ_LATENCY = 64
# Beats per tile of the sparse benchmark GEMM: many times the R / drain_rows + 2 cycles a tile needs to drain,
# so fill/drain is amortized and the ratio approaches M/N.
BENCH_SPARSE_BEATS = 128
# The core's tests except the benchmark (which needs its GEMM and output file, see measure_cycles).
CORE_FUNCTIONAL_TESTS = ["test_training_passes", "test_random_tiles_back_to_back", "test_extremes", "test_prune",
                         "test_prune_cycles", "test_reset_mid_job", "test_cycles_match_formula"]


def benchmark_gemm(spec: ArchSpec) -> tuple[int, int, int]:
    """[m, k, n] of the cycle benchmark: 2 x 2 output tiles, K = BENCH_SPARSE_BEATS groups of M."""
    return 2 * spec.rows, min(BENCH_SPARSE_BEATS * spec.m, spec.max_k), 2 * spec.cols


def _sim_stats(rdir: Path) -> tuple[float, float]:
    """(simulated ns, wall s) summed over the cocotb tests of a run."""
    sim_ns = wall = 0.0
    for tc in ET.parse(rdir / "results.xml").iter("testcase"):
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        sim_ns += float(props.get("sim_time_duration", 0.0))
        wall += float(tc.get("time", 0.0))
    return sim_ns, wall


def run_regression(out: Path, *, heavy: bool, seed: int | None, log=print) -> dict[str, dict[str, float]]:
    """Every module's testbench; returns per module {wall_s, sim_cycles, cycles_per_s}."""
    from sim.tb_common import CLOCK_NS
    names = [f.stem for f in rtl_sources(out) if f.stem in TESTBENCHES]
    stats = {}
    for top in names:
        t0 = time.monotonic()
        tests = {"sat_core": CORE_FUNCTIONAL_TESTS, "sat_kernel": KERNEL_FUNCTIONAL_TESTS}.get(top)
        rdir = run_tests(out, top, TESTBENCHES[top], seed=seed,
                         extra_env={"SATGEN_HEAVY": "1" if heavy else "0"}, testcase=tests)
        sim_ns, sim_wall = _sim_stats(rdir)
        cycles = sim_ns / CLOCK_NS
        stats[top] = {"wall_s": round(time.monotonic() - t0, 2), "sim_cycles": int(cycles),
                      "cycles_per_s": round(cycles / sim_wall) if sim_wall else 0}
        log(f"sim.run: {top}: passed ({stats[top]['sim_cycles']} cycles simulated, "
            f"{stats[top]['cycles_per_s']} cycles/s, {stats[top]['wall_s']} s incl. build)")
    return stats


def measure_cycles(out: Path, spec: ArchSpec, gemm: tuple[int, int, int], *, seed: int | None) -> dict:
    """Run the core's cycle measurement; returns the report (not yet written)."""
    from sim.tb_common import CLOCK_NS
    with tempfile.TemporaryDirectory(prefix="satgen-cycles-") as tmp:
        target = Path(tmp) / "cycles.json"
        rdir = run_tests(out, "sat_core", TESTBENCHES["sat_core"], testcase="test_cycle_measurement", seed=seed,
                         extra_env={"SATGEN_CYCLES_OUT": str(target), "SATGEN_CYCLES_GEMM": ",".join(map(str, gemm))})
        report = json.loads(target.read_text())
    sim_ns, sim_wall = _sim_stats(rdir)
    report["sim_cycles_per_s"] = round(sim_ns / CLOCK_NS / sim_wall) if sim_wall else 0
    report["source"] = "measured: cocotb + Verilator on the generated sat_core (sim/tb_core.py)"
    return report


def kernel_gemms(spec: ArchSpec) -> list[tuple[int, int, int]]:
    """GEMMs of the kernel's cycle report: the core benchmark's and KERNEL_RATIO_GEMM (k capped at max_k)."""
    big = (KERNEL_RATIO_GEMM[0], min(KERNEL_RATIO_GEMM[1], spec.max_k), KERNEL_RATIO_GEMM[2])
    return [benchmark_gemm(spec), big]


def dense_over_sparse(jobs: list[dict], gemm, n: int) -> float | None:
    """DENSE cycles / SPARSE cycles of ``gemm`` among a cycle report's ``jobs``, the SPARSE job being the one
    at runtime ``n`` (the spec's n_hw; the kernel bench runs SPARSE at several n). None when the report
    has no DENSE job or no SPARSE job at ``n`` for that GEMM (e.g. SATGEN_KERNEL_CYCLES_NS left n out)."""
    g = tuple(gemm)
    dense = [j["cycles"] for j in jobs if tuple(j["gemm"]) == g and j["mode"] == "DENSE"]
    sparse = [j["cycles"] for j in jobs if tuple(j["gemm"]) == g and j["mode"] == "SPARSE" and j.get("n") == n]
    if not dense or not sparse:
        return None
    if len(set(dense)) > 1 or len(set(sparse)) > 1:
        raise ValueError(f"cycle report has differing cycles for repeated jobs of GEMM {list(g)}: "
                         f"DENSE {dense}, SPARSE at n={n} {sparse}")
    return round(dense[0] / sparse[0], 4)


def measure_kernel_cycles(out: Path, spec: ArchSpec, gemms: list[tuple[int, int, int]], *,
                          read_latency: int = KERNEL_READ_LATENCY, seed: int | None = None) -> dict:
    """sat_kernel end to end (sim/tb_kernel.py test_cycle_measurement): cycles from the ap_start write to
    ap_done per job and mode, no random pauses, fixed read latency. Returns the report (not yet written)."""
    from sim.tb_common import CLOCK_NS
    with tempfile.TemporaryDirectory(prefix="satgen-kcycles-") as tmp:
        target = Path(tmp) / "kernel_cycles.json"
        rdir = run_tests(out, "sat_kernel", TESTBENCHES["sat_kernel"], testcase="test_cycle_measurement", seed=seed,
                         extra_env={"SATGEN_KERNEL_CYCLES_OUT": str(target),
                                    "SATGEN_KERNEL_CYCLES_GEMMS": ";".join(",".join(map(str, g)) for g in gemms),
                                    "SATGEN_KERNEL_READ_LATENCY": str(read_latency)})
        report = json.loads(target.read_text())
    sim_ns, sim_wall = _sim_stats(rdir)
    report["sim_cycles_per_s"] = round(sim_ns / CLOCK_NS / sim_wall) if sim_wall else 0
    report["arch"] = spec.name
    report["source"] = ("measured: cocotb + Verilator on the generated sat_kernel (sim/tb_kernel.py), "
                        "cycles from the control register's ap_start edge to its ap_done edge")
    ratio = {}
    for g in gemms:
        r = dense_over_sparse(report["jobs"], g, spec.n) if spec.sparse else None
        if r is not None:
            ratio[",".join(map(str, g))] = r
    report["ratios"] = ratio
    key = ",".join(map(str, gemms[-1]))
    report["dense_over_sparse"] = ratio.get(key)          # None on the dense baseline (no SPARSE mode)
    report["dense_over_sparse_gemm"] = list(gemms[-1])
    report["ideal_ratio"] = spec.m / spec.n if spec.sparse else 1.0
    return report


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.run", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="generated output directory (make gen)")
    ap.add_argument("--quick", action="store_true", help="the CI-sized regression instead of the full one")
    ap.add_argument("--gemm", help="benchmark GEMM as M,K,N (default: 2x2 tiles, K = 128 groups of M)")
    ap.add_argument("--seed", type=int, help="cocotb random seed (default: random, printed in the logs)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    try:
        spec = load_spec(out / "spec.json")
        gemm = benchmark_gemm(spec)
        if args.gemm:
            try:
                gemm = tuple(int(x) for x in args.gemm.split(","))
                if len(gemm) != 3 or min(gemm) < 1 or gemm[1] > spec.max_k:
                    raise ValueError
            except ValueError:
                ap.error(f"--gemm must be three positive integers M,K,N with K <= {spec.max_k}, got {args.gemm!r}")
        t0 = time.monotonic()
        stats = run_regression(out, heavy=not args.quick, seed=args.seed)
        report = measure_cycles(out, spec, gemm, seed=args.seed)
        report["regression"] = stats
        _write_json(out / "reports" / "cycles.json", report)
        kreport = measure_kernel_cycles(out, spec, kernel_gemms(spec), seed=args.seed)
        _write_json(out / "reports" / "kernel_cycles.json", kreport)
    except (SimError, SpecError) as e:
        print(f"sim.run: error: {e}", file=sys.stderr)
        return 1
    print(f"sim.run: {spec.name}: GEMM {list(gemm)} ({report['tiles']} tiles): sparse {report['sparse_cycles']} "
          f"cycles, dense {report['dense_cycles']} cycles, ratio {report['ratio']:.3f} (ideal "
          f"{report['ideal_ratio']:.2f}); {report['sim_cycles_per_s']} simulated cycles/s")
    for j in kreport["jobs"]:
        print(f"sim.run: sat_kernel {j['mode']} {j['gemm']}: {j['cycles']} cycles (ap_start -> ap_done, read latency "
              f"{kreport['memory']['read_latency']})")
    print(f"sim.run: sat_kernel dense/sparse on {kreport['dense_over_sparse_gemm']}: {kreport['dense_over_sparse']} "
          f"(ideal {kreport['ideal_ratio']:.2f}); {kreport['sim_cycles_per_s']} simulated cycles/s")
    print(f"sim.run: wrote {out / 'reports' / 'cycles.json'} and kernel_cycles.json ({time.monotonic() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
