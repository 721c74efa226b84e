"""`make sweep` / `satgen sweep`: design-space sweep of array shape x N:M x buffer depth.

    python -m gen.sweep [--base sat_2x8] [--network resnet18_cifar] [--batch 32] [--jobs N] [--json FILE]
                        [--arrays 4x4,8x8,...] [--ratios 2:4,2:8,...] [--depths 256,512,...]

Every point is a spec built with ``make_spec`` from the base preset (so it is validated like any
user spec) and evaluated with the cycle model (gen/perf.py) on a BDWP and a dense training step,
in parallel across local cores. Resources per point are the ones the spec fixes exactly or nearly:
DSP48E2 = multipliers x ``spec.dsp_per_multiplier``; on-chip buffer bits (weight buffer:
rows x wbuf_depth words of N values + N indices; activation buffer: cols x abuf_depth words of M
values; two banks of each, since the evaluated schedule double-buffers) and the RAMB18 they need
at 18 Kib each (a lower bound: real mapping rounds up per bank).
LUT/FF need Yosys (`make synth` per preset) and are not estimated here.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click

from .perf import step_cost
from .spec import ArchSpec, SpecError, make_spec, preset, spec_to_dict
from .workloads import network_names

__all__ = ["sweep_points", "evaluate", "pareto_front", "resources", "ARRAYS", "RATIOS", "DEPTHS"]

ARRAYS = ((4, 4), (8, 8), (8, 16), (16, 8), (16, 16))
RATIOS = ((2, 4), (1, 4), (2, 8), (4, 8), (1, 16))
DEPTHS = (256, 512, 1024, 2048)
RAMB18_BITS = 18 * 1024


def resources(spec: ArchSpec) -> dict:
    """Spec-derived resources of a point (see module docstring)."""
    mults = spec.macs_per_cycle
    idx = spec.idx_bits if spec.sparse else 0
    banks = 2                                   # ping-pong: perf.BEST_SCHEDULE overlaps loads
    wbits = banks * spec.rows * spec.wbuf_depth * spec.n * (spec.data_bits + idx)
    abits = banks * spec.cols * spec.abuf_depth * spec.m * spec.data_bits
    return {"multipliers": mults, "dsp": math.ceil(mults * spec.dsp_per_multiplier),
            "buffer_kib": (wbits + abits) / 8 / 1024, "ramb18_min": math.ceil(wbits / RAMB18_BITS) + math.ceil(abits / RAMB18_BITS)}


def sweep_points(base: ArchSpec, arrays=ARRAYS, ratios=RATIOS, depths=DEPTHS) -> list[dict]:
    """Spec fields of every valid point, in a fixed order."""
    points = []
    for (rows, cols), (n, m), depth in itertools.product(arrays, ratios, depths):
        fields = spec_to_dict(base)
        fields.update(name=f"sweep_{rows}x{cols}_{n}of{m}_d{depth}", rows=rows, cols=cols, n=n, m=m,
                      wbuf_depth=depth, abuf_depth=depth, sparse=True)
        points.append(fields)
    return points


def evaluate(args: tuple[dict, str, int]) -> dict:
    """One point: BDWP and dense step cycles on ``network`` (runs in a worker process)."""
    fields, network, batch = args
    try:
        spec = make_spec(**fields)
    except SpecError as e:
        return {"name": fields["name"], "error": str(e)}
    bdwp = step_cost(spec, network, bdwp=True, batch=batch)
    dense = step_cost(spec, network, bdwp=False, batch=batch)
    return {"name": spec.name, "rows": spec.rows, "cols": spec.cols, "n": spec.n, "m": spec.m,
            "depth": spec.wbuf_depth, "bdwp_cycles": bdwp.cycles, "dense_cycles": dense.cycles,
            "speedup": dense.cycles / bdwp.cycles, "ideal": spec.ideal_step_speedup,
            "step_ms": 1e3 * bdwp.seconds(), "utilization": bdwp.utilization(), **resources(spec)}


def pareto_front(points: list[dict], keys=("bdwp_cycles", "dsp", "ramb18_min")) -> list[dict]:
    """Points no other point beats on every key (all minimised), sorted by the first key."""
    ok = [p for p in points if "error" not in p]
    front = [p for p in ok
             if not any(all(q[k] <= p[k] for k in keys) and any(q[k] < p[k] for k in keys) for q in ok)]
    return sorted(front, key=lambda p: tuple(p[k] for k in keys) + (p["name"],))


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


@click.command()
@click.option("--base", default="sat_2x8", show_default=True, help="preset the other fields come from")
@click.option("--network", default="resnet18_cifar", show_default=True, type=click.Choice(network_names()))
@click.option("--batch", default=32, show_default=True)
@click.option("--jobs", default=0, help="worker processes (0 = all local cores)")
@click.option("--json", "json_out", default="", metavar="FILE", help="also write every point and the front as JSON")
@click.option("--arrays", default=",".join(f"{r}x{c}" for r, c in ARRAYS), show_default=True, help="rows x cols list")
@click.option("--ratios", default=",".join(f"{n}:{m}" for n, m in RATIOS), show_default=True, help="N:M list")
@click.option("--depths", default=",".join(map(str, DEPTHS)), show_default=True,
              help="buffer depths (wbuf_depth = abuf_depth)")
def main(base: str, network: str, batch: int, jobs: int, json_out: str, arrays: str, ratios: str, depths: str) -> None:
    """Sweep array shape x N:M x buffer depth; print the Pareto front of cycles vs resources."""
    try:
        base_spec = preset(base)
    except SpecError as e:
        click.echo(f"sweep: error: {e}", err=True)
        sys.exit(2)
    if batch < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch")
    jobs = jobs or os.cpu_count() or 1
    arr, rat = _parse_list(arrays, "x", "arrays"), _parse_list(ratios, ":", "ratios")
    dep = [d for (d,) in _parse_list(depths, "", "depths")]
    pts = sweep_points(base_spec, arr, rat, dep)
    click.echo(f"sweep: {len(pts)} points ({len(arr)} arrays x {len(rat)} N:M x {len(dep)} depths) "
               f"on {network}, batch {batch}, {jobs} processes")
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(evaluate, [(p, network, batch) for p in pts], chunksize=4))
    bad = [r for r in results if "error" in r]
    for r in bad:
        click.echo(f"  skipped {r['name']}: {r['error']}")
    if len(bad) == len(results):
        click.echo("sweep: error: no valid point to evaluate", err=True)
        sys.exit(2)
    front = pareto_front(results)
    click.echo(f"evaluated {len(results) - len(bad)} points in {time.time() - t0:.1f} s; "
               f"Pareto front (BDWP step cycles vs DSP vs RAMB18) has {len(front)} points:")
    head = f"{'array':>7} {'N:M':>5} {'depth':>5} {'BDWP Mcyc':>10} {'ms/step':>8} {'speedup':>8} {'ideal':>6} " \
           f"{'util':>6} {'DSP':>5} {'RAMB18':>6}"
    click.echo(head)
    click.echo("-" * len(head))
    for p in front:
        click.echo(f"{p['rows']:>3}x{p['cols']:<3} {p['n']:>2}:{p['m']:<2} {p['depth']:>5} {p['bdwp_cycles'] / 1e6:>10.2f} "
                   f"{p['step_ms']:>8.2f} {p['speedup']:>7.3f}x {p['ideal']:>5.2f}x {100 * p['utilization']:>5.1f}% "
                   f"{p['dsp']:>5} {p['ramb18_min']:>6}")
    if json_out:
        Path(json_out).write_text(json.dumps({"network": network, "batch": batch, "points": results,
                                              "pareto": [p["name"] for p in front]}, indent=2, sort_keys=True) + "\n")
        click.echo(f"wrote {json_out}")


if __name__ == "__main__":
    main()
