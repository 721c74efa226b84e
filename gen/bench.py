"""`make bench`: the cycle model against RTL, network training-step speedups, resources, plots.

    python -m gen.bench --out build/sat_2x8 [--batch 32] [--no-rtl] [--no-plots]

Reads the generated project's spec.json, validates the core model against cycles measured by the
cocotb core testbench (:func:`validate_against_rtl`), evaluates each network's dense and BDWP training step
(gen/perf.py), reads Yosys figures (reports/synth.json of every generated preset), and writes
reports/bench.json plus PNG plots into reports/. Tables go to the terminal.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import click

from .perf import (BASELINE_SCHEDULE, BEST_SCHEDULE, HLS_KERNEL_SCHEDULE, PASSES, Schedule, StepCost, core_source,
                   gemm_cost, step_cost)
from .spec import PRESETS, ArchSpec, SpecError, load_spec
from .workloads import NETWORK_SUMMARIES, lower_network, network_names

__all__ = ["run_bench", "network_report", "resource_report", "validate_against_rtl", "validation_shapes",
           "PAPER_SPEEDUP_2X8", "SCHEDULE_LADDER", "MAX_MODEL_ERROR"]

# The SAT paper's reported average training speedup at 2:8 (PAPER.md): a reference, not a spec value.
PAPER_SPEEDUP_2X8 = 1.75

BATCH_SENSITIVITY = (1, 8, 32, 128)

# The dataflow ideas, switched on one after another (what each one buys, on the same hardware).
SCHEDULE_LADDER = [
    ("generated HLS kernel (fetch loop trip counts)", HLS_KERNEL_SCHEDULE),
    ("AXI-width fetch, fixed order, no overlap", BASELINE_SCHEDULE),
    ("+ offline scheduling (loop order per GEMM)", Schedule(loop_order="auto", overlap=False, prune_parallel=False)),
    ("+ double buffering / shadow accumulators", Schedule(loop_order="auto", overlap=True, prune_parallel=False)),
    ("+ FF and BP PRUNE passes in parallel", BEST_SCHEDULE),
]


def _pct(x: float) -> str:
    return f"{100 * x:5.1f} %"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


# ---- model vs RTL -----------------------------------------------------------------------------

# The model's error bound against RTL-measured cycles (issue 5).
MAX_MODEL_ERROR = 0.03
# Operand data of the measurement runs (cycles do not depend on it; a fixed seed keeps runs repeatable).
RTL_SEED = 1


def validation_shapes(spec: ArchSpec) -> list[tuple[int, int, int]]:
    """(rows, k, cols) GEMMs for the RTL comparison, derived from the array shape: several tiles,
    edge tiles, k not a multiple of M, a reduction shorter than the drain (a tile then waits for it)
    and a longer one; plus `make sim`'s benchmark GEMM (sim.run.benchmark_gemm: fill/drain
    amortized) when it exists. Each is measured in SPARSE and DENSE mode."""
    r, c, m = spec.rows, spec.cols, spec.m
    shapes = [(2 * r, 4 * m, 2 * c), (r + 1, 3 * m + 1, 3 * c - 1), (3 * r, 16 * m + 5, c)]
    try:
        from sim.run import benchmark_gemm
    except ImportError:
        return shapes
    return shapes + [tuple(benchmark_gemm(spec))]


def validate_against_rtl(spec: ArchSpec, out: Path, shapes: list[tuple[int, int, int]] | None = None,
                         log=print) -> dict:
    """Measure each GEMM of ``shapes`` on the generated RTL core with the RTL engineer's cycle
    measurement (sim.run.measure_cycles: sim/tb_core.py test_cycle_measurement, no stalls, results
    bit-exact against hostpy) and compare the SPARSE and DENSE cycles with the model's core cycles
    (gen.perf.gemm_cost(...).core_busy: the per-tile / fill-drain split the network numbers use).

    Returns {"ok": bool, "status": str, "rows": [{"gemm", "mode", "model_cycles", "rtl_cycles", "error"}]};
    ok is False when nothing could be measured, a measurement failed or an error exceeds the bound.
    Needs Verilator on PATH (make bench puts it there); the Verilator build is cached per RTL.
    """
    shapes = shapes or validation_shapes(spec)
    try:
        from sim.run import measure_cycles
        from sim.runner import SimError
    except ImportError as e:
        return {"ok": False, "status": f"RTL cycle measurement not available ({e}); nothing measured", "rows": []}
    if shutil.which("verilator") is None:
        return {"ok": False, "status": "verilator not on PATH (run through make bench); nothing measured", "rows": []}
    rows = []
    for m_, k, n in shapes:
        t0 = time.time()
        try:
            measured = measure_cycles(out, spec, (m_, k, n), seed=RTL_SEED)
        except SimError as e:
            return {"ok": False, "status": f"RTL measurement of {m_}x{k}x{n} failed: {str(e).splitlines()[0]}",
                    "rows": rows}
        modes = [("SPARSE", "sparse_cycles"), ("DENSE", "dense_cycles")] if spec.sparse else [("DENSE", "dense_cycles")]
        for mode, key in modes:
            model = gemm_cost(spec, mode, m_, k, n).core_busy
            rtl_cycles = int(measured[key])
            rows.append({"gemm": [m_, k, n], "mode": mode, "model_cycles": model, "rtl_cycles": rtl_cycles,
                         "error": abs(model - rtl_cycles) / rtl_cycles,
                         "rtl_dense_over_sparse": measured["ratio"] if spec.sparse else None})
        log(f"  measured {m_}x{k}x{n} on the RTL core in {time.time() - t0:.1f} s")
    worst = max(r["error"] for r in rows)
    status = (f"{len(rows)} measurements, worst error {100 * worst:.2f} % "
              f"({'within' if worst <= MAX_MODEL_ERROR else 'ABOVE'} the {100 * MAX_MODEL_ERROR:.0f} % bound)")
    return {"ok": worst <= MAX_MODEL_ERROR, "status": status, "rows": rows}


# ---- networks ---------------------------------------------------------------------------------

def network_report(spec: ArchSpec, name: str, batch: int, schedule: Schedule = BEST_SCHEDULE) -> dict:
    """Dense vs BDWP training step of one network on ``spec`` (a sparse architecture)."""
    dense = step_cost(spec, name, bdwp=False, batch=batch, schedule=schedule)
    bdwp = step_cost(spec, name, bdwp=True, batch=batch, schedule=schedule) if spec.sparse else dense
    speedup = dense.cycles / bdwp.cycles
    ideal = spec.ideal_step_speedup
    # The bound for this workload under the lowering policies: dense GEMMs (stem, classifier,
    # attention) stay at dense speed, sparse ones run M/N times faster, nothing else costs.
    gemms = lower_network(name, batch=batch, m=spec.m, bdwp=spec.sparse)
    workload_ideal = sum(g.macs for g in gemms) / sum(g.macs * (spec.n / spec.m if g.sparse else 1) for g in gemms)

    def summary(s: StepCost) -> dict:
        return {"cycles": s.cycles, "seconds": s.seconds(), "effective_gops": s.effective_gops(),
                "utilization": s.utilization(), "breakdown": s.breakdown(),
                "macs": s.macs, "mults": s.mults}

    layers = []
    for ld, lb in zip(dense.layers, bdwp.layers):
        cyc_b = lb.cycles
        mults_b = sum(g.mults for g in lb.passes.values())
        mults_d = sum(g.mults for g in ld.passes.values())
        layers.append({
            "layer": lb.name,
            "modes": lb.modes,
            "dense_cycles": ld.cycles,
            "bdwp_cycles": cyc_b,
            "speedup": ld.cycles / cyc_b,
            "dense_utilization": mults_d / (ld.cycles * spec.macs_per_cycle),
            "bdwp_utilization": mults_b / (cyc_b * spec.macs_per_cycle),
            "bdwp_passes": {p: g.cycles for p, g in lb.passes.items()},
            "prune_cycles": lb.prune.cycles,
            "loop_order": {p: g.loop_order for p, g in lb.passes.items()},
        })
    return {"network": name, "summary": NETWORK_SUMMARIES[name], "batch": batch,
            "speedup": speedup, "ideal": ideal, "fraction_of_ideal": speedup / ideal,
            "workload_ideal": workload_ideal,
            "utilization": bdwp.utilization(), "dense_utilization": dense.utilization(),
            "dense": summary(dense), "bdwp": summary(bdwp), "layers": layers}


def bound_analysis(spec: ArchSpec, name: str, batch: int, schedule: Schedule = BEST_SCHEDULE) -> dict:
    """What keeps the speedup from the ideal: the gap between the BDWP step and dense/ideal, split
    exactly into its causes (the parts add up to the gap)."""
    dense = step_cost(spec, name, bdwp=False, batch=batch, schedule=schedule)
    bdwp = step_cost(spec, name, bdwp=True, batch=batch, schedule=schedule)
    bd_b, bd_d = bdwp.breakdown(), dense.breakdown()
    ideal = spec.ideal_step_speedup
    beats_b, beats_d = sum(bd_b[p] for p in PASSES), sum(bd_d[p] for p in PASSES)
    loss = {
        "dense GEMMs in the BDWP step (stem FF, classifier, attention) + ceil(K/M) padding":
            beats_b - beats_d / ideal,
        "core fill/drain (a tile takes max(beats, drain) cycles)": bd_b["fill_drain"] - bd_d["fill_drain"] / ideal,
        "transfer stalls": bd_b["transfer"] - bd_d["transfer"] / ideal,
        "PRUNE (pre-generation, once per step)": bd_b["PRUNE"],
    }
    gap = bdwp.cycles - dense.cycles / ideal
    assert abs(sum(loss.values()) - gap) < 1e-6 * max(1.0, gap) + 1e-3, (loss, gap)
    return {"speedup": dense.cycles / bdwp.cycles, "ideal": ideal, "gap_cycles": gap,
            "cycles_lost": loss,
            "speedup_without": {k: dense.cycles / (bdwp.cycles - v) for k, v in loss.items()}}


# ---- resources --------------------------------------------------------------------------------

def _synth_for(build_root: Path, name: str) -> dict | None:
    p = build_root / name / "reports" / "synth.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError:
        return None


def resource_report(spec: ArchSpec, out: Path, batch: int, schedule: Schedule = BEST_SCHEDULE) -> list[dict]:
    """Yosys figures of every preset that has reports/synth.json beside ``out`` (and of ``out``),
    with the ResNet-18 effective GOPS per DSP and per kLUT of the synthesized unit: the core, else
    the array, else the PE scaled by rows x cols (marked "pe x RC", an estimate without control)."""
    rows = []
    for name in sorted(set(PRESETS) | {spec.name}):
        s = spec if name == spec.name else PRESETS[name]
        synth = _synth_for(out.parent, out.name if name == spec.name else name)
        if synth is None or synth.get("arch") != name:
            continue
        if synth.get("core") or synth.get("array"):
            unit_name = "core" if synth.get("core") else "array"
            unit = {k: synth[unit_name][k] for k in ("lut", "ff", "dsp", "bram")}
        elif synth.get("pe"):
            unit_name = "pe x RC"
            unit = {k: synth["pe"][k] * s.rows * s.cols for k in ("lut", "ff", "dsp", "bram")}
        else:
            continue
        rep = network_report(s, "resnet18_cifar", batch, schedule)
        gops = rep["bdwp"]["effective_gops"] if s.sparse else rep["dense"]["effective_gops"]
        entry = {"arch": name, "unit": unit_name, "resources": unit, "synth": synth,
                 "resnet18_effective_gops": gops,
                 "gops_per_dsp": gops / unit["dsp"] if unit["dsp"] else None,
                 "gops_per_klut": gops / (unit["lut"] / 1000) if unit["lut"] else None}
        if synth.get("pe") and synth.get("dense_pe") and synth["dense_pe"]["lut"]:
            # The sparse PE against the dense PE with the same multipliers: the mux/index overhead.
            entry["pe_lut_overhead"] = synth["pe"]["lut"] / synth["dense_pe"]["lut"] - 1
        rows.append(entry)
    return rows


# ---- plots ------------------------------------------------------------------------------------

def _save(fig, path: Path) -> str:
    """Write a finished figure as PNG (no software stamp, so reruns are byte-stable) and close it."""
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path.name


def write_plots(report: dict, reports_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    # 1. Speedup vs N/M against the ideal curve 3 / (2 N/M + 1).
    fig, ax = plt.subplots(figsize=(6, 4))
    r = [i / 200 for i in range(2, 201)]
    ax.plot(r, [3 / (2 * x + 1) for x in r], "k-", label="ideal 3/(2N/M+1)")
    pts = report["presets"]
    for net, marker in zip(network_names(), "osD"):
        xs = [p["n"] / p["m"] for p in pts]
        ys = [p["speedup"][net] for p in pts]
        ax.plot(xs, ys, marker, label=f"model: {net}", alpha=0.8)
    ax.plot([2 / 8], [PAPER_SPEEDUP_2X8], "r*", markersize=12, label="SAT paper 2:8 (1.75x)")
    for p in pts:
        ax.annotate(f"{p['n']}:{p['m']}", (p["n"] / p["m"], p["speedup"]["resnet18_cifar"]),
                    textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("N/M (kept fraction)")
    ax.set_ylabel("training-step speedup over dense")
    ax.set_title("BDWP speedup vs N:M (same accelerator, dense mode as baseline)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    written.append(_save(fig, reports_dir / "speedup_vs_nm.png"))

    # 2. Per-layer utilization of every network (dense and BDWP).
    nets = report["networks"]
    fig, axes = plt.subplots(len(nets), 1, figsize=(9, 3 * len(nets)))
    for ax, (net, rep) in zip(axes, nets.items()):
        names = [layer["layer"] for layer in rep["layers"]]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [layer["dense_utilization"] for layer in rep["layers"]], 0.4, label="dense")
        ax.bar([i + 0.2 for i in x], [layer["bdwp_utilization"] for layer in rep["layers"]], 0.4, label="BDWP")
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("PE utilization")
        ax.set_title(f"{net}: multiplier utilization per layer")
        ax.legend(fontsize=7)
    written.append(_save(fig, reports_dir / "layer_utilization.png"))

    # 3. Time breakdown: dense vs BDWP step per network, stacked by FF/BP/WU/PRUNE/transfer.
    fig, ax = plt.subplots(figsize=(8, 4))
    parts = list(PASSES) + ["fill_drain", "PRUNE", "transfer"]
    labels, bottoms = [], []
    bars = []
    for net, rep in nets.items():
        for kind in ("dense", "bdwp"):
            labels.append(f"{net}\n{kind}")
            bars.append(rep[kind]["breakdown"])
    norm = [rep["dense"]["cycles"] for rep in nets.values() for _ in (0, 1)]
    bottoms = [0.0] * len(bars)
    for part in parts:
        vals = [b[part] / n for b, n in zip(bars, norm)]
        ax.bar(range(len(bars)), vals, bottom=bottoms, label=part)
        bottoms = [a + b for a, b in zip(bottoms, vals)]
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("cycles / dense step cycles")
    ax.set_title("Where the time goes (normalised to each network's dense step)")
    ax.legend(fontsize=7)
    written.append(_save(fig, reports_dir / "time_breakdown.png"))
    return written


# ---- the whole bench --------------------------------------------------------------------------

# Schedules the headline tables can use (--schedule).
HEADLINE_SCHEDULES = {
    "best": ("the RTL core (its measured cycle formula) fed at AXI width by a double-buffered data mover, "
             "loop order chosen per GEMM, parallel PRUNE passes (modelled dataflow)", BEST_SCHEDULE),
    "hls": ("the generated HLS kernel's fetch/PE/drain loops as written (trip counts)", HLS_KERNEL_SCHEDULE),
}


def run_bench(out: Path, *, batch: int = 32, rtl: bool = True, plots: bool = True, schedule: str = "best",
              log=print) -> dict:
    spec_path = out / "spec.json"
    if not spec_path.is_file():
        raise click.ClickException(f"{spec_path} not found: generate the project first (make gen ARCH=...)")
    spec = load_spec(spec_path)
    if schedule not in HEADLINE_SCHEDULES:
        raise click.ClickException(f"unknown schedule {schedule!r}; known: {', '.join(HEADLINE_SCHEDULES)}")
    headline_text, headline = HEADLINE_SCHEDULES[schedule]
    reports = out / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log(f"bench: {spec.name}: {spec.rows}x{spec.cols} PEs x {spec.n} MACs, "
        f"{'%d:%d sparse' % (spec.n, spec.m) if spec.sparse else 'dense baseline'}, "
        f"{spec.clock_mhz:g} MHz, AXI {spec.axi_bits} b, batch {batch}; core cycles from {core_source()}")

    report: dict = {"arch": spec.name, "spec": {k: getattr(spec, k) for k in ("n", "m", "sparse", "rows", "cols",
                    "wbuf_depth", "abuf_depth", "axi_bits", "clock_mhz")},
                    "batch": batch, "core_model": core_source(),
                    "schedule": {"name": schedule, "what": headline_text},
                    "paper_speedup_2x8": PAPER_SPEEDUP_2X8}

    # 1. Model vs RTL.
    if rtl:
        log("\n== cycle model vs RTL (cocotb core testbench on Verilator) ==")
        val = validate_against_rtl(spec, out, log=log)
        report["model_vs_rtl"] = val["rows"]
        report["model_vs_rtl_status"] = val["status"]
        report["model_vs_rtl_ok"] = val["ok"]
        if val["rows"]:
            log(_table(["gemm [m,k,n]", "mode", "model", "rtl", "error", "rtl dense/sparse"],
                       [["x".join(map(str, r["gemm"])), r["mode"], str(r["model_cycles"]), str(r["rtl_cycles"]),
                         f"{100 * r['error']:.2f} %",
                         f"{r['rtl_dense_over_sparse']:.3f}x" if r["rtl_dense_over_sparse"] and r["mode"] == "SPARSE" else ""]
                        for r in val["rows"]]))
        log(f"status: {val['status']}")
    else:
        report["model_vs_rtl"] = []
        report["model_vs_rtl_status"] = "skipped (--no-rtl)"

    # 2. Networks on this architecture.
    nets = {}
    for name in network_names():
        nets[name] = network_report(spec, name, batch, headline)
        hls = network_report(spec, name, batch, HLS_KERNEL_SCHEDULE)
        nets[name]["generated_hls_kernel"] = {"speedup": hls["speedup"], "bdwp_seconds": hls["bdwp"]["seconds"],
                                              "dense_seconds": hls["dense"]["seconds"]}
    report["networks"] = nets
    log(f"\n== training step, dense vs BDWP on {spec.name} (batch {batch}) ==")
    log(f"schedule '{schedule}': {headline_text}")
    log(_table(["network", "dense Mcyc", "BDWP Mcyc", "speedup", "ideal", "% ideal", "workload bound", "paper 2:8",
                "util dense", "util BDWP", "GOPS dense", "GOPS BDWP"],
               [[n, f"{r['dense']['cycles'] / 1e6:.2f}", f"{r['bdwp']['cycles'] / 1e6:.2f}",
                 f"{r['speedup']:.3f}x", f"{r['ideal']:.3f}x", _pct(r["fraction_of_ideal"]), f"{r['workload_ideal']:.3f}x",
                 f"{PAPER_SPEEDUP_2X8:.2f}x", _pct(r["dense_utilization"]), _pct(r["utilization"]),
                 f"{r['dense']['effective_gops']:.1f}", f"{r['bdwp']['effective_gops']:.1f}"]
                for n, r in nets.items()]))
    log("\nwhere the BDWP step's cycles go:")
    parts = list(PASSES) + ["fill_drain", "PRUNE", "transfer"]
    log(_table(["network"] + parts,
               [[n] + [_pct(r["bdwp"]["breakdown"][p] / r["bdwp"]["cycles"]) for p in parts]
                for n, r in nets.items()]))
    rn = nets["resnet18_cifar"]
    log("\nResNet-18 per layer (BDWP):")
    log(_table(["layer", "modes FF/BP/WU", "speedup", "util dense", "util BDWP", "FF order"],
               [[layer["layer"], "/".join(layer["modes"].get(p, "-")[:1] for p in PASSES),
                 f"{layer['speedup']:.3f}x", _pct(layer["dense_utilization"]), _pct(layer["bdwp_utilization"]),
                 layer["loop_order"].get("FF", "")] for layer in rn["layers"]]))

    # End-to-end step (gen/e2e.py): + host work measured here, PCIe modelled -> networks.<net>.end_to_end_speedup.
    from .e2e import merge_into_bench
    merge_into_bench(report, spec, batch, log=log)

    # 3. What bounds the speedup, and what each dataflow idea buys.
    if spec.sparse:
        report["bounds"] = {n: bound_analysis(spec, n, batch, headline) for n in network_names()}
        b = report["bounds"]["resnet18_cifar"]
        log(f"\nResNet-18: {b['speedup']:.3f}x of {b['ideal']:.3f}x; the gap of {b['gap_cycles']:.0f} cycles "
            f"split into its causes, and the speedup if that one were gone:")
        log(_table(["loss", "cycles", "speedup without it"],
                   [[k, f"{v:.0f}", f"{b['speedup_without'][k]:.3f}x"] for k, v in b["cycles_lost"].items()]))
        ladder = []
        for label, sch in SCHEDULE_LADDER:
            row = {"schedule": label, "loop_order": sch.loop_order, "overlap": sch.overlap, "fetch": sch.fetch,
                   "prune_parallel": sch.prune_parallel}
            for n in network_names():
                rep = network_report(spec, n, batch, sch)
                row[n] = rep["speedup"]
                row[n + "_bdwp_ms"] = 1e3 * rep["bdwp"]["seconds"]
            ladder.append(row)
        report["schedule_ladder"] = ladder
        log("\ndataflow ideas switched on in turn: BDWP speedup over dense, and ResNet-18 BDWP step time")
        log("(modelled; docs/PERF.md says which of them the generated HLS kernel / RTL core implement):")
        log(_table(["schedule"] + network_names() + ["ResNet-18 ms/step"],
                   [[r["schedule"]] + [f"{r[n]:.3f}x" for n in network_names()] + [f"{r['resnet18_cifar_bdwp_ms']:.1f}"]
                    for r in ladder]))

    # Batch size: it only lengthens WU's reduction and widens FF/BP, so the speedup barely moves.
    if spec.sparse:
        report["batch_sensitivity"] = {str(b): {n: network_report(spec, n, b, headline)["speedup"]
                                                for n in network_names()} for b in BATCH_SENSITIVITY}
        log("\nspeedup vs batch size:")
        log(_table(["batch"] + network_names(), [[b] + [f"{v[n]:.3f}x" for n in network_names()]
                                                 for b, v in report["batch_sensitivity"].items()]))

    # 4. The other sparse presets (same bench, for the speedup-vs-N:M plot).
    presets = []
    for pname, ps in sorted(PRESETS.items()):
        if not ps.sparse or (ps.rows, ps.cols, ps.data_bits, ps.board) != (spec.rows, spec.cols, spec.data_bits, spec.board):
            continue
        entry = {"arch": pname, "n": ps.n, "m": ps.m, "ideal": ps.ideal_step_speedup, "speedup": {}}
        for n in network_names():
            entry["speedup"][n] = network_report(ps, n, batch, headline)["speedup"]
        presets.append(entry)
    report["presets"] = presets
    if presets:
        log("\nspeedup per N:M preset (same array):")
        log(_table(["preset", "N:M", "ideal"] + network_names(),
                   [[p["arch"], f"{p['n']}:{p['m']}", f"{p['ideal']:.3f}x"] + [f"{p['speedup'][n]:.3f}x" for n in network_names()]
                    for p in presets]))

    # 5. Resources.
    res = resource_report(spec, out, batch, headline)
    report["resources"] = res
    log("\n== resources (Yosys synth_xilinx, reports/synth.json of each generated preset) ==")
    if res:
        def pe(r: dict, key: str) -> str:
            return str(r["synth"][key]["lut"]) if r["synth"].get(key) else "-"
        log(_table(["arch", "unit", "LUT", "FF", "DSP", "BRAM18", "PE LUT", "dense PE LUT", "ResNet-18 GOPS",
                    "GOPS/DSP", "GOPS/kLUT"],
                   [[r["arch"], r["unit"]] + [str(r["resources"][k]) for k in ("lut", "ff", "dsp", "bram")] +
                    [pe(r, "pe"), pe(r, "dense_pe"), f"{r['resnet18_effective_gops']:.1f}",
                     f"{r['gops_per_dsp']:.2f}" if r.get("gops_per_dsp") else "-",
                     f"{r['gops_per_klut']:.2f}" if r.get("gops_per_klut") else "-"] for r in res]))
    else:
        log(f"no reports/synth.json found: run `make synth ARCH={spec.name}` (and for the dense baseline) first")

    # 6. Output files.
    if plots and nets and presets:
        report["plots"] = write_plots(report, reports)
    report["wall_seconds"] = round(time.time() - t0, 2)
    path = reports / "bench.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)
    log(f"\nwrote {path}" + (f" and {', '.join(report.get('plots', []))}" if report.get("plots") else "")
        + f" in {report['wall_seconds']} s")
    return report


@click.command()
@click.option("--out", required=True, metavar="DIR", help="generated project (make gen ARCH=... first)")
@click.option("--batch", default=32, show_default=True, help="training batch size of the workloads")
@click.option("--rtl/--no-rtl", default=True, help="validate the model against the cocotb core testbench")
@click.option("--plots/--no-plots", default=True, help="write PNG plots into reports/")
@click.option("--schedule", type=click.Choice(list(HEADLINE_SCHEDULES)), default="best", show_default=True,
              help="dataflow of the headline tables: the modelled best, or the generated HLS kernel's loops")
def main(out: str, batch: int, rtl: bool, plots: bool, schedule: str) -> None:
    """Benchmark a generated architecture: model vs RTL, network speedups, resources, plots."""
    if batch < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch")
    try:
        report = run_bench(Path(out), batch=batch, rtl=rtl, plots=plots, schedule=schedule, log=click.echo)
    except SpecError as e:
        click.echo(f"bench: error: {e}", err=True)
        sys.exit(2)
    if rtl and not report["model_vs_rtl_ok"]:
        # Everything else is written; the exit code says the model is not validated.
        click.echo(f"bench: error: model vs RTL: {report['model_vs_rtl_status']}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
