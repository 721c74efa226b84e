"""Summarise train reports (reports/train*.json) of several seeds into the recipes table of docs/RECIPES.md.

    python scripts/recipes_table.py REPORT.json [REPORT.json ...]

Rows: (model, N:M, arch, method, recipe, plan); columns: mean test accuracy over the seeds
(± sample std), the mean change vs the same seed's dense run, training FLOPs vs dense, and the
modelled step speedup on the kernel's runtime_n ("kernel") and with a runtime-N kernel ("rt-N").
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict


def main(paths: list[str]) -> int:
    rows: dict[tuple, list[dict]] = defaultdict(list)
    dense: dict[tuple, float] = {}
    for path in paths:
        for r in json.loads(open(path, encoding="utf-8").read())["runs"]:
            if r["method"] == "dense":
                dense[(r["model"], r["seed"])] = r["test_accuracy"]
                key = (r["model"], "-", "-", "dense", "-", "-")
            else:
                plan = ",".join(v for v in r["plan"].values())
                default_lam = 2e-4 if r["recipe"] == "srste" else 0.0
                recipe = r["recipe"] + ("" if r["lam"] == default_lam else f" λ={r['lam']:g}")
                key = (r["model"], r["nm"], r.get("arch", "?"), r["method"], recipe, plan)
            rows[key].append(r)
    print("| model | N:M | arch | method | recipe | plan | seeds | test acc % (mean ± sd) | vs dense (points) "
          "| FLOPs vs dense | modelled speedup, kernel runtime_n | modelled speedup, runtime-N kernel |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    seen = set()
    for key, runs in rows.items():
        if key[3] == "dense":
            seeds = {r["seed"] for r in runs}
            if (key[0], tuple(sorted(seeds))) in seen:
                continue
            seen.add((key[0], tuple(sorted(seeds))))
            runs = list({r["seed"]: r for r in runs}.values())
        acc = [100 * r["test_accuracy"] for r in runs]
        delta = [100 * (r["test_accuracy"] - dense[(r["model"], r["seed"])]) for r in runs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0

        def mean_of(f):
            vals = [f(r) for r in runs]
            vals = [v for v in vals if v is not None]
            return statistics.fmean(vals) if vals else None

        flops = mean_of(lambda r: r.get("flops_fraction"))
        k = mean_of(lambda r: r.get("modelled", {}).get("kernel", {}).get("speedup"))
        rt = mean_of(lambda r: r.get("modelled", {}).get("runtime_n", {}).get("speedup"))
        fmt = (lambda v, f: "-" if v is None else f.format(v))
        print(f"| {' | '.join(key)} | {len(runs)} | {statistics.fmean(acc):.2f} ± {sd:.2f} | "
              f"{statistics.fmean(delta):+.2f} | {fmt(flops and 100 * flops, '{:.1f} %')} | "
              f"{fmt(k, '{:.2f}×')} | {fmt(rt, '{:.2f}×')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
