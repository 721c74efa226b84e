"""Results of training runs: the terminal table, reports/train.json and the accuracy-curve plot."""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["format_table", "write_json", "write_plot"]


def _label(run: dict) -> str:
    return f"{run['method']}{' ' + run['nm'] if run['nm'] else ''}"


def format_table(runs: list[dict]) -> str:
    """Accuracy table: one row per (model, method, N:M, backend)."""
    head = f"{'model':5s}  {'method':6s}  {'N:M':4s}  {'backend':7s}  {'test acc':>8s}  {'vs dense':>8s}  {'numpy==':>7s}  {'time s':>7s}"
    lines = [head, "-" * len(head)]
    dense = {r["model"]: r["test_accuracy"] for r in runs if r["method"] == "dense"}
    for r in runs:
        delta = r["test_accuracy"] - dense[r["model"]] if r["model"] in dense else float("nan")
        same = {True: "yes", False: "NO", None: "-"}[r.get("matches_numpy")]
        lines.append(f"{r['model']:5s}  {r['method']:6s}  {r['nm'] or '-':4s}  {r['backend']:7s}  "
                     f"{100 * r['test_accuracy']:7.2f}%  {100 * delta:+7.2f}%  {same:>7s}  {r['seconds']:7.1f}")
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
