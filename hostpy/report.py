"""Results of training runs: the terminal table, reports/train.json and the accuracy-curve plot."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["format_table", "write_json", "write_plot"]


def _label(run: dict) -> str:
    recipe = run.get("recipe")
    extra = f"+{recipe}" if recipe and recipe != "srste" else ""
    return f"{run['method']}{extra}{' ' + run['nm'] if run['nm'] else ''}"


def _speedup(run: dict, which: str) -> str:
    m = run.get("modelled", {}).get(which)
    return f"{m['speedup']:.2f}x" if m and m.get("speedup") else "-"


def format_table(runs: list[dict]) -> str:
    """Accuracy table: one row per (model, method, recipe, N:M, backend), with the run's training
    FLOPs relative to dense and the modelled step speedup on the kernel's runtime_n and with runtime N."""
    head = (f"{'model':5s}  {'method':6s}  {'recipe':13s}  {'N:M':5s}  {'backend':7s}  {'test acc':>8s}  "
            f"{'vs dense':>8s}  {'FLOPs':>6s}  {'kernel':>7s}  {'rt-N':>7s}  {'numpy==':>7s}  {'time s':>7s}")
    lines = [head, "-" * len(head)]
    dense = {r["model"]: r["test_accuracy"] for r in runs if r["method"] == "dense"}
    for r in runs:
        delta = r["test_accuracy"] - dense[r["model"]] if r["model"] in dense else float("nan")
        same = {True: "yes", False: "NO", None: "-"}[r.get("matches_numpy")]
        flops = f"{100 * r['flops_fraction']:5.1f}%" if r.get("flops_fraction") is not None else "-"
        lines.append(f"{r['model']:5s}  {r['method']:6s}  {r.get('recipe') or '-':13s}  {r['nm'] or '-':5s}  "
                     f"{r['backend']:7s}  {100 * r['test_accuracy']:7.2f}%  {100 * delta:+7.2f}%  {flops:>6s}  "
                     f"{_speedup(r, 'kernel'):>7s}  {_speedup(r, 'runtime_n'):>7s}  {same:>7s}  {r['seconds']:7.1f}")
    return "\n".join(lines)


def write_json(path: Path, runs: list[dict], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**meta, "runs": runs}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_plot(path: Path, runs: list[dict]) -> str:
    """Test accuracy per epoch, one panel per model. Returns a message (matplotlib is optional)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return f"no plot: matplotlib is not installed (pip install matplotlib) — {path} not written"
    models = list(dict.fromkeys(r["model"] for r in runs))          # in run order
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in runs if r["model"] == model):
            ep = [h["epoch"] for h in r["history"]]
            acc = [100 * h["test_accuracy"] for h in r["history"]]
            ax.plot(ep, acc, marker="o", ms=3, label=f"{_label(r)} [{r['backend']}]",
                    linestyle="-" if r["backend"] != "float" else "--")
        ax.set_title(f"{model}: digits test accuracy")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"wrote {path}"
