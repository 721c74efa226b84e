"""The ``train`` command's experiment: dense vs SR-STE vs BDWP at several N:M, MLP and CNN.

Per model: dense (float, host) and, for each N:M, SR-STE and BDWP with every GEMM on the chosen
device backend (full runs add float SR-STE/BDWP references). Each device run on a backend other
than numpy is repeated on the numpy backend (the golden model) with the same seed, and the final
weights are compared bit for bit (``matches_numpy`` in train.json). A device run at an N:M other
than the --arch's uses the sibling architecture ``sat_<n>x<m>`` next to it, generated if missing
(that needs the satgen generator; on a board, generate it beforehand); when there is no such
preset but the --arch groups by the same M, the run uses the --arch itself at a runtime n (SPARSE
where n is in its ``nm.runtime_n``, DENSE elsewhere, reported per layer).

``recipes`` (hostpy.bdwp.RECIPES) x ``methods`` ("srste" FF-only, "bdwp" both directions) are run
for every N:M; ``engine="float"`` runs them on the float engine (host float64, no device), priced
on the resolved architecture by the performance model.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .accel import open_accelerator
from .archdir import load_arch
from .errors import ArchError
from .report import format_table, write_json, write_plot
from .train import MODELS, DeviceEngine, FloatEngine, RunConfig, load_digits_split, train_run

__all__ = ["QUICK", "FULL", "resolve_arch", "run_suite"]

# Epochs / training-set size. Quick: the whole csim command in < 2 min on 2 cores.
# CNN: 3 epochs x 320 samples (30 steps, as 2 x 480 before) so structure decay visits 3 frames.
QUICK = {"mlp": {"epochs": 3, "train_limit": 640}, "cnn": {"epochs": 3, "train_limit": 320}}
FULL = {"mlp": {"epochs": 15, "train_limit": None}, "cnn": {"epochs": 10, "train_limit": None}}
LR = {"mlp": 0.05, "cnn": 0.05}


def resolve_arch(primary: Path, n: int, m: int, log=print) -> Path:
    """The architecture directory for n:m runs: ``primary`` when it computes n:m, else its sibling
    sat_<n>x<m> (generated from the preset if missing), else ``primary`` at a runtime n when it
    groups by the same M (hostpy.train.DeviceEngine runs n SPARSE only if it is in nm.runtime_n)."""
    spec = load_arch(primary).spec
    if spec.sparse and (spec.n, spec.m) == (n, m):
        return primary
    sibling = primary.parent / f"sat_{n}x{m}"
    if (sibling / "regmap.json").is_file():
        return sibling
    same_m = spec.sparse and spec.m == m
    try:
        from gen.render import generate
        from gen.spec import SpecError, preset
    except ImportError as e:
        if same_m:
            return primary
        raise ArchError(f"{n}:{m} runs need the architecture {sibling}; generate it "
                        f"(python -m gen gen --arch sat_{n}x{m} --out {sibling})") from e
    try:
        target = preset(f"sat_{n}x{m}")
    except SpecError as e:
        if same_m:
            log(f"no preset sat_{n}x{m}: {n}:{m} runs use {spec.name} (M={m}) at runtime n={n}")
            return primary
        raise ArchError(f"no preset for {n}:{m} ({e}); generate an architecture for it at {sibling}") from e
    generate(target, sibling, log=log)
    return sibling


def _device_run(cfg: RunConfig, arch_dir: Path, backend: str, options: dict, data, log) -> dict:
    with open_accelerator(arch_dir, backend, **options) as acc:
        rec = train_run(cfg, DeviceEngine(cfg, acc), data, log=log)
    rec["arch"] = acc.spec.name
    return rec


def _float_run(cfg: RunConfig, arch_dir: Path, data, log) -> dict:
    arch = load_arch(arch_dir)
    hw = (arch.spec, tuple(arch.regmap["nm"]["runtime_n"])) if arch.spec.sparse else None
    rec = train_run(cfg, FloatEngine(cfg), data, log=log, hw=hw)
    rec["arch"] = arch.spec.name
    return rec


def run_suite(primary: Path, backend: str, *, quick: bool, models=("mlp", "cnn"), nms=((2, 8), (2, 4)),
              verify: bool = True, seed: int = 0, backend_options: dict | None = None, plot: bool = True,
              log=print, recipes=("srste",), methods=("srste", "bdwp"), engine: str = "device",
              recipe_options: dict | None = None) -> dict:
    """``recipe_options``: RunConfig fields for the runs (plan, dense_frac, fine_frac, decay_coef, frames, lam)."""
    primary = Path(primary)
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if engine not in ("device", "float"):
        raise ValueError(f"engine must be device or float, got {engine!r}")
    load_arch(primary)                                   # fail early on a bad arch dir
    options = backend_options or {}
    ropts = dict(recipe_options or {})
    data = load_digits_split(seed=seed)
    sizes = QUICK if quick else FULL
    for model in models:                                 # bad recipe / plan / method: fail before training
        for r in recipes:
            for me in methods:
                RunConfig(model=model, method=me, recipe=r, n=nms[0][0], m=nms[0][1], **ropts)
    arch_for = {nm: resolve_arch(primary, *nm, log=log) for nm in nms}
    if engine == "device":
        for d in sorted(set(arch_for.values())):         # fail fast (and build csim libraries) before training
            open_accelerator(d, backend, **options).close()
    runs: list[dict] = []
    t0 = time.perf_counter()
    for model in models:
        common = dict(model=model, seed=seed, lr=LR[model], **sizes[model])
        log(f"[{model}] dense baseline (float)")
        cfg = RunConfig(method="dense", **common)
        runs.append(train_run(cfg, FloatEngine(cfg), data, log=log))
        for (n, m), recipe, method in ((nm, r, me) for nm in nms for r in recipes for me in methods):
            cfg = RunConfig(method=method, n=n, m=m, recipe=recipe, **common, **ropts)
            if engine == "float":
                log(f"[{model}] {method} {recipe} {n}:{m} on the float engine, priced on {arch_for[(n, m)].name}")
                runs.append(_float_run(cfg, arch_for[(n, m)], data, log))
                continue
            if not quick:
                runs.append(_float_run(cfg, arch_for[(n, m)], data, log))
            log(f"[{model}] {method} {recipe} {n}:{m} on {backend} ({arch_for[(n, m)].name})")
            rec = _device_run(cfg, arch_for[(n, m)], backend, options, data, log)
            if verify and backend != "numpy":
                ref = _device_run(cfg, arch_for[(n, m)], "numpy", {}, data, log=lambda *_: None)
                rec["matches_numpy"] = all(np.array_equal(a, b) for a, b in
                                           zip(rec["final_weights"], ref["final_weights"])) and \
                    rec["history"] == ref["history"]
                log(f"  {backend} vs numpy backend, same seed: "
                    f"{'bit-identical weights and history' if rec['matches_numpy'] else 'MISMATCH'}")
            runs.append(rec)
    for r in runs:
        r.pop("final_weights")
    table = format_table(runs)
    log("\n" + table)
    reports = primary / "reports"
    meta = {"arch": load_arch(primary).spec.name, "backend": backend if engine == "device" else "float",
            "quick": quick, "dataset": "sklearn digits 8x8", "wall_seconds": round(time.perf_counter() - t0, 1)}
    stem = "train" if engine == "device" else "train_float"
    write_json(reports / f"{stem}.json", runs, meta)
    log(f"wrote {reports / (stem + '.json')}")
    if plot:
        log(write_plot(reports / f"{stem}.png", runs))
    return {**meta, "runs": runs, "table": table}
