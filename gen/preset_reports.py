"""The committed evidence for a sweep-chosen preset pair: the sweep run and both kernels' synthesis.

    python -m gen.preset_reports [--sparse sat_2x8_vu9p] [--dense dense_vu9p] [--synth-fastest 1]
                                 [--out build/sweep_vu9p] [--docs docs] [--workers 2]

(`make vu9p-reports`, on demand: each 32x64 kernel is about 20 CPU minutes of Yosys.) Runs
`make sweep`'s default grid around the sparse preset with ``--synth-fastest`` (every point modelled,
the fastest per N:M synthesized), checks that the sweep still chooses exactly the preset (otherwise
the preset in gen/spec.py is stale: an error, nothing written), synthesizes the dense twin's kernel
(through the sweep's synthesis cache), and writes ``docs/sweep_<suffix>.json`` (+ Pareto plot) and
``docs/synth_<preset>.json`` for both: resources, cell histogram, synthesis key (the generated RTL's
hash: tests/test_vu9p.py fails once the RTL changes without a rerun), fractions of the part, and the
modelled step figures beside them.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from . import sweep
from .perf import step_cost
from .spec import ArchSpec, SpecError, preset, spec_to_dict


class ReportError(RuntimeError):
    """The sweep does not choose the preset, or a synthesis failed."""


def _fields(spec) -> dict:
    return {k: v for k, v in spec_to_dict(spec).items() if k != "name"}


def synth_record(spec, out: Path, tool: str = "yosys") -> dict:
    """The kernel synthesis of ``spec`` from the sweep's cache under ``out``, run (and cached) if missing."""
    key = sweep.synth_key(spec, tool)
    path = out / "cache" / f"{key}.json"
    if path.is_file():
        rec = json.loads(path.read_text())
        if rec.get("synth_key") == key:
            return rec
    rec = sweep.synth_point(spec_to_dict(spec), tool)
    rec["synth_key"] = key
    sweep._write_json(path, rec)
    return rec


def preset_report(spec, rec: dict, *, network: str, batch: int, budget: float, sweep_point: str | None) -> dict:
    """docs/synth_<preset>.json: the synthesized kernel of ``spec`` and its modelled figures."""
    if spec.sparse:
        model = sweep.model_point(spec_to_dict(spec), network, batch)
        keys = ("modelled_step_ms", "modelled_dense_step_ms", "modelled_speedup", "modelled_effective_gops",
                "modelled_bdwp_cycles", "multipliers")
    else:                                    # the dense twin trains dense only
        cost = step_cost(spec, network, bdwp=False, batch=batch)
        model = {"modelled_dense_step_ms": 1e3 * cost.seconds(), "modelled_dense_cycles": cost.cycles,
                 "multipliers": spec.macs_per_cycle, **sweep.buffer_estimate(spec)}
        keys = ("modelled_dense_step_ms", "modelled_dense_cycles", "multipliers")
    point = {**{k: rec[k] for k in sweep.RESOURCES}, "synth_top": rec["synth_top"],
             "buffer_ramb18_estimate": model["buffer_ramb18_estimate"]}
    return {"arch": spec.name, "spec": spec_to_dict(spec), "part": spec.fpga_part,
            "part_limits": sweep.part_limits(spec.fpga_part), "budget": budget,
            **{k: rec[k] for k in sweep.RESOURCES}, "cells": rec.get("cells", {}),
            **sweep.fit_report(point, spec.fpga_part, budget),
            "synth_key": rec["synth_key"], "synth_top": rec["synth_top"], "synth_target": rec["synth_target"],
            "synth_tool": rec["synth_tool"], "synth_seconds": rec["synth_seconds"],
            "what": sweep.SYNTH_WHAT[rec["synth_tool"]],
            "modelled": {k: model[k] for k in keys},
            "modelled_what": f"gen/perf.py cycle model, {network} batch {batch} (not measured)",
            "sweep_point": sweep_point}


def write_reports(s: ArchSpec, d: ArchSpec, *, out: Path, docs: Path, synth_fastest: int, workers: int,
                  scheduler: str = "", network: str = "resnet18_cifar", batch: int = 32,
                  budget: float = sweep.DEFAULT_BUDGET, arrays=sweep.ARRAYS, depths=sweep.DEPTHS, log=print) -> dict:
    """Sweep ``arrays`` x ``depths`` around sparse spec ``s``; write the reports of ``s`` and its dense twin ``d``."""
    sparse, dense = s.name, d.name
    if not s.sparse or d.sparse or _fields(s) != {**_fields(d), "sparse": True}:
        raise ReportError(f"{sparse} / {dense} are not a sparse preset and its dense twin")
    points, _ = sweep.grid_points(s, arrays, ((s.n, s.m),), depths, (s.axi_bits,))
    report = sweep.run_sweep(points, network=network, batch=batch, out=out, synth="yosys", scheduler=scheduler,
                             workers=workers, budget=budget, synth_fastest=synth_fastest, log=log)
    if report["errors"]:
        raise ReportError(f"sweep jobs failed: {report['errors']}")
    best = next((p for p in report["points"] if p["name"] == report.get("best_within_budget")), None)
    if best is None or {k: v for k, v in best["spec"].items() if k != "name"} != _fields(s):
        got = best["name"] if best else "no point within budget"
        raise ReportError(f"the sweep no longer chooses {sparse}: it chooses {got}; update gen/spec.py's preset "
                          f"(nothing written)")
    reports = {sparse: preset_report(s, synth_record(s, out), network=network, batch=batch, budget=budget,
                                     sweep_point=best["name"]),
               dense: preset_report(d, synth_record(d, out), network=network, batch=batch, budget=budget,
                                    sweep_point=None)}
    suffix = sparse.split("_")[-1]
    docs.mkdir(parents=True, exist_ok=True)
    sweep._write_json(docs / f"sweep_{suffix}.json", {k: v for k, v in report.items() if k != "errors"})
    png = out / "reports" / "sweep_pareto.png"
    if png.is_file():
        shutil.copyfile(png, docs / f"sweep_{suffix}_pareto.png")
    for name, rep in reports.items():
        sweep._write_json(docs / f"synth_{name}.json", rep)
        log(f"preset_reports: {name}: {rep['lut']} LUT, {rep['ff']} FF, {rep['dsp']} DSP, {rep['bram']} RAMB18, "
            f"{rep['uram']} URAM ({rep['synth_top']}); fits {100 * budget:.0f} %: {rep['fits_budget']}")
    return reports


@click.command()
@click.option("--sparse", default="sat_2x8_vu9p", show_default=True)
@click.option("--dense", default="dense_vu9p", show_default=True)
@click.option("--synth-fastest", default=1, show_default=True, help="kernels synthesized per N:M, fastest first")
@click.option("--out", default="build/sweep_vu9p", show_default=True)
@click.option("--docs", default="docs", show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--scheduler", default="", metavar="ADDRESS")
def main(sparse, dense, synth_fastest, out, docs, workers, scheduler) -> None:
    """Sweep around a preset pair, check the choice, and commit both kernels' synthesis reports."""
    try:
        write_reports(preset(sparse), preset(dense), out=Path(out), docs=Path(docs), synth_fastest=synth_fastest, workers=workers,
                      scheduler=scheduler, log=click.echo)
    except (ReportError, SpecError, sweep.SweepError) as e:
        click.echo(f"preset_reports: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
