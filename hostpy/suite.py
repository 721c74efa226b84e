"""The ``train`` command's experiment: dense vs SR-STE vs BDWP at several N:M, MLP and CNN.

Per model: dense (float, host) and, for each N:M, SR-STE and BDWP with every GEMM on the chosen
device backend (full runs add float SR-STE/BDWP references). Each device run on a backend other
than numpy is repeated on the numpy backend (the golden model) with the same seed, and the final
weights are compared bit for bit (``matches_numpy`` in train.json). A device run at an N:M other
than the --arch's uses the sibling architecture ``sat_<n>x<m>`` next to it, generated if missing
(that needs the satgen generator; on a board, generate it beforehand).
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
QUICK = {"mlp": {"epochs": 3, "train_limit": 640}, "cnn": {"epochs": 2, "train_limit": 480}}
FULL = {"mlp": {"epochs": 15, "train_limit": None}, "cnn": {"epochs": 10, "train_limit": None}}
LR = {"mlp": 0.05, "cnn": 0.05}


def resolve_arch(primary: Path, n: int, m: int, log=print) -> Path:
    """The architecture directory that computes n:m: ``primary`` itself or its sibling sat_<n>x<m>."""
    spec = load_arch(primary).spec
    if spec.sparse and (spec.n, spec.m) == (n, m):
        return primary
    sibling = primary.parent / f"sat_{n}x{m}"
    if (sibling / "regmap.json").is_file():
        return sibling
    try:
        from gen.render import generate
        from gen.spec import SpecError, preset
    except ImportError as e:
        raise ArchError(f"{n}:{m} runs need the architecture {sibling}; generate it "
                        f"(python -m gen gen --arch sat_{n}x{m} --out {sibling})") from e
    try:
        generate(preset(f"sat_{n}x{m}"), sibling, log=log)
    except SpecError as e:
        raise ArchError(f"no preset for {n}:{m} ({e}); generate an architecture for it at {sibling}") from e
    return sibling


def _device_run(cfg: RunConfig, arch_dir: Path, backend: str, options: dict, data, log) -> dict:
    with open_accelerator(arch_dir, backend, **options) as acc:
        rec = train_run(cfg, DeviceEngine(cfg, acc), data, log=log)
    rec["arch"] = acc.spec.name
    return rec


def run_suite(primary: Path, backend: str, *, quick: bool, models=("mlp", "cnn"), nms=((2, 8), (2, 4)),
              verify: bool = True, seed: int = 0, backend_options: dict | None = None, plot: bool = True,
              log=print) -> dict:
    primary = Path(primary)
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    load_arch(primary)                                   # fail early on a bad arch dir
    options = backend_options or {}
    data = load_digits_split(seed=seed)
    sizes = QUICK if quick else FULL
    arch_for = {nm: resolve_arch(primary, *nm, log=log) for nm in nms}
    for d in sorted(set(arch_for.values())):             # fail fast (and build csim libraries) before training
        open_accelerator(d, backend, **options).close()
    runs: list[dict] = []
    t0 = time.perf_counter()
    for model in models:
        common = dict(model=model, seed=seed, lr=LR[model], **sizes[model])
        log(f"[{model}] dense baseline (float)")
        cfg = RunConfig(method="dense", **common)
        runs.append(train_run(cfg, FloatEngine(cfg), data, log=log))
        for n, m in nms:
            for method in ("srste", "bdwp"):
                cfg = RunConfig(method=method, n=n, m=m, **common)
                if not quick:
                    runs.append(train_run(cfg, FloatEngine(cfg), data, log=log))
                log(f"[{model}] {method} {n}:{m} on {backend} ({arch_for[(n, m)].name})")
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
    meta = {"arch": load_arch(primary).spec.name, "backend": backend, "quick": quick, "dataset": "sklearn digits 8x8",
            "wall_seconds": round(time.perf_counter() - t0, 1)}
    write_json(reports / "train.json", runs, meta)
    log(f"wrote {reports / 'train.json'}")
    if plot:
        log(write_plot(reports / "train.png", runs))
    return {**meta, "runs": runs, "table": table}
