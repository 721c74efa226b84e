"""Layer-wise N:M plans, the kernel mode each training GEMM runs in, and the runtime-N cost rule.

* **Plan**: which N:M each GEMM layer trains at. A rule (``classifier-dense``: every layer whose
  grouped axes are multiples of M except the final classifier, hostpy's policy so far;
  ``ends-dense``: also the first layer dense; ``all``: every eligible layer) optionally followed
  by explicit entries, e.g. ``"ends-dense,fc2=2:8"`` or ``"fc1=dense,fc2=1:8"``.
* **Mode**: on a device a pass runs SPARSE at n only when the phase's effective weights are n:M
  with the kernel's M and n is one of the kernel's ``regmap.json`` ``nm.runtime_n``; anything else
  (dense phases, PGF mask decay above zero, n outside runtime_n, patterns grouped by another M)
  runs DENSE on the kernel and is reported with the reason (:func:`pass_modes`); so does a pass whose
  SPARSE run at n plus its PRUNE would cost no fewer modelled cycles than DENSE
  (:func:`sparse_or_dense`, e.g. n = 7 on 2:8 hardware).
* **Cost**: modelled cycles of a step from gen.perf's public ``gemm_cost`` / ``prune_cost`` per
  GEMM with the GEMM's own mode, and :func:`runtime_n_gemm_cycles` for a SPARSE GEMM at n.

numpy-free and gen-free at import (a board imports it); the cost functions import gen.perf lazily.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from .bdwp import DENSE_PHASE, Phase

__all__ = ["PLAN_RULES", "LayerShape", "parse_plan", "resolve_plan", "pass_modes", "sparse_or_dense",
           "runtime_n_gemm_cycles",
           "gemm_cycles", "prune_cycles", "layer_step_cycles", "StepLedger", "full_runtime_n", "network_plan_cost"]

PLAN_RULES = ("classifier-dense", "ends-dense", "all")


@dataclass(frozen=True)
class LayerShape:
    """A GEMM layer as the plan and the cost model see it: W[cout, k], ``spatial`` outputs per sample."""

    name: str
    k: int
    cout: int
    spatial: int = 1
    needs_dx: bool = True

    def gemms(self, batch: int) -> dict[str, tuple[int, int, int]]:
        """(rows, k, cols) of FF, BP (when the layer needs dX) and WU at ``batch`` samples."""
        b = batch * self.spatial
        out = {"FF": (self.cout, self.k, b)}
        if self.needs_dx:
            out["BP"] = (self.k, self.cout, b)
        out["WU"] = (self.cout, b, self.k)
        return out


def _eligible(layer: LayerShape, m: int) -> bool:
    return layer.k % m == 0 and layer.cout % m == 0


def parse_plan(text: str | None) -> tuple[str, dict[str, tuple[int, int] | None]]:
    """"ends-dense,fc2=2:8" -> ("ends-dense", {"fc2": (2, 8)}); "dense" as a value keeps a layer dense."""
    rule, explicit = "classifier-dense", {}
    if not text:
        return rule, explicit
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if "=" not in part:
            if part not in PLAN_RULES:
                raise ValueError(f"unknown plan rule {part!r}; rules: {', '.join(PLAN_RULES)}; "
                                 f"or layer=N:M / layer=dense entries")
            rule = part
            continue
        name, value = (v.strip() for v in part.split("=", 1))
        if value == "dense":
            explicit[name] = None
            continue
        try:
            n, m = (int(v) for v in value.split(":"))
        except ValueError:
            raise ValueError(f"plan entry {part!r}: expected layer=N:M or layer=dense") from None
        if n < 1 or m < 2:
            raise ValueError(f"plan entry {part!r}: need n >= 1 and m >= 2")
        explicit[name] = (n, m)
    return rule, explicit


def resolve_plan(plan: str | None, layers: list[LayerShape], n: int, m: int) -> dict[str, tuple[int, int] | None]:
    """Target N:M of every layer (None: dense) for a run at ``n:m`` under ``plan``."""
    rule, explicit = parse_plan(plan)
    names = [layer.name for layer in layers]
    unknown = sorted(set(explicit) - set(names))
    if unknown:
        raise ValueError(f"plan names unknown layer(s) {', '.join(unknown)}; layers: {', '.join(names)}")
    out: dict[str, tuple[int, int] | None] = {}
    for i, layer in enumerate(layers):
        if layer.name in explicit:
            t = explicit[layer.name]
            if t is not None and not _eligible(layer, t[1]):
                raise ValueError(f"plan: {layer.name} (W {layer.cout}x{layer.k}) cannot be {t[0]}:{t[1]}: "
                                 f"its grouped axes are not multiples of {t[1]}")
            out[layer.name] = t
            continue
        keep_dense = (rule != "all" and i == len(layers) - 1) or (rule == "ends-dense" and i == 0)
        out[layer.name] = None if keep_dense or not _eligible(layer, m) else (n, m)
    return out


def full_runtime_n(m: int) -> tuple[int, ...]:
    """The runtime_n of a kernel whose N is fully a register: every n below M."""
    return tuple(range(1, m))


def _phase_mode(phase: Phase, m_hw: int, runtime_n) -> tuple[str, int | None, str]:
    if phase.dense:
        return "DENSE", None, "dense phase" if phase.n is not None else "dense layer"
    if phase.decay > 0:
        return "DENSE", None, "mask decay > 0: weights not N:M"
    if phase.m != m_hw:
        return "DENSE", None, f"{phase.n}:{phase.m} is not grouped by the kernel's M={m_hw}"
    if phase.n not in runtime_n:
        return "DENSE", None, f"n={phase.n} not in runtime_n {list(runtime_n)}"
    return "SPARSE", phase.n, ""


def sparse_or_dense(spec, n: int, sparse_gemms, prune) -> tuple[bool, str]:
    """Whether GEMMs the phase would run SPARSE at runtime ``n`` should run DENSE instead, by modelled cost.

    ``sparse_gemms``: [(rows, k, cols, count)] of those passes; ``prune``: (rows, k, count) of the W the
    kernel would PRUNE at n for them. SPARSE costs the GEMMs at n (gen.perf, through
    :func:`runtime_n_gemm_cycles`) plus that PRUNE (:func:`prune_cycles`); DENSE costs the same GEMMs in
    DENSE mode with the mask computed on the host (no PRUNE). Returns (True, reason) when DENSE is no
    dearer, e.g. where ceil(n / n_hw) >= M / n_hw records per group make a SPARSE GEMM as slow as DENSE
    and PRUNE and the indices come on top; (False, "") otherwise.
    """
    sparse = sum(c * runtime_n_gemm_cycles(spec, n, r, k, cols) for r, k, cols, c in sparse_gemms)
    sparse += prune[2] * prune_cycles(spec, prune[0], prune[1], n)
    dense = sum(c * gemm_cycles(spec, "DENSE", None, r, k, cols) for r, k, cols, c in sparse_gemms)
    if sparse < dense:
        return False, ""
    spg = -(-n // spec.n)
    steps = f"n={n}: {spg} record{'s' if spg > 1 else ''} per group"
    steps += (f" >= M/n_hw = {spec.m / spec.n:g} (SPARSE no faster than DENSE)" if spg * spec.n >= spec.m
              else f" < M/n_hw = {spec.m / spec.n:g}")
    return True, (f"{steps}; modelled SPARSE + PRUNE {sparse} >= DENSE {dense} cycles (gen.perf): DENSE, "
                  f"mask computed on the host")


def pass_modes(phase: Phase, method: str, needs_dx: bool, m_hw: int, runtime_n, *, spec=None,
               layer: "LayerShape | None" = None, batch: int | None = None
               ) -> dict[str, tuple[str, int | None, str]]:
    """pass -> (kernel mode, n, reason when DENSE) for one layer in one step.

    FF follows the phase; BP too under BDWP (its own copy, same n); under FF-only SR-STE ("srste")
    BP multiplies the FF-masked W, not N:M along Cout, so DENSE; BP is skipped for a layer that
    needs no dX; WU is always DENSE. Given the hardware (``spec``), the ``layer`` and the ``batch``,
    passes that would run SPARSE run DENSE instead where that costs no more modelled cycles
    (:func:`sparse_or_dense`; e.g. n = 7 on 2:8 hardware), the reason saying so; this needs gen.perf
    (not on a board without gen: there the phase alone decides).
    """
    if method == "dense":
        phase = DENSE_PHASE
    ff = _phase_mode(phase, m_hw, runtime_n)
    out = {"FF": ff}
    if needs_dx:
        out["BP"] = ff if method == "bdwp" else ("DENSE", None, "FF-only: W masked along Cin" if method == "srste" else ff[2])
    out["WU"] = ("DENSE", None, "weight update")
    # Where the masks come from: the kernel's PRUNE when it can make them (n:M_hw, n in runtime_n),
    # also for a decaying phase; else the host applies the same golden rule (hostpy.bdwp.pattern_mask).
    if phase.dense:
        out["PRUNE"] = ("NONE", None, "")
    elif phase.m == m_hw and phase.n in runtime_n:
        out["PRUNE"] = ("KERNEL", phase.n, "")
    else:
        out["PRUNE"] = ("HOST", None, "mask computed on the host")
    sparse = [p for p in ("FF", "BP") if p in out and out[p][0] == "SPARSE"]
    if sparse and spec is not None and layer is not None and batch is not None and _have_perf():
        gem = layer.gemms(batch)
        dense, why = sparse_or_dense(spec, phase.n, [(*gem[p], 1) for p in sparse], (layer.cout, layer.k, 1))
        if dense:
            for p in sparse:
                out[p] = ("DENSE", None, why)
            out["PRUNE"] = ("HOST", None, why)
    return out


def _have_perf() -> bool:
    try:
        import gen.perf  # noqa: F401
    except ImportError:
        return False
    return True


# ---- cost -----------------------------------------------------------------------------------------

def runtime_n_gemm_cycles(spec, n: int, rows: int, k: int, cols: int) -> int:
    """Modelled cycles of a SPARSE GEMM keeping n weights per M-group (runtime N).

    The cost rule (MICROARCH: a group of n kept weights takes ceil(n / n_hw) array steps, and A
    carries ceil(n / n_hw) records per group) lives in gen.perf (``gemm_cost(..., n=n)``), which
    charges the core's beats and the operands' ABI v2 sizes at that n.
    """
    if not 1 <= n < spec.m:
        raise ValueError(f"runtime n={n} outside 1..M-1={spec.m - 1} (n = M is DENSE)")
    return _perf_gemm(spec, "SPARSE", rows, k, cols, n)


@lru_cache(maxsize=4096)
def _perf_gemm(spec, mode: str, rows: int, k: int, cols: int, n: int | None = None) -> int:
    from gen.perf import gemm_cost
    return gemm_cost(spec, mode, rows, k, cols, n=n).cycles


@lru_cache(maxsize=1024)
def prune_cycles(spec, rows: int, k: int, n: int | None = None) -> int:
    """PRUNE of W[rows, k] at runtime n (both copies), gen.perf's public prune_cost."""
    from gen.perf import RTL_KERNEL_SCHEDULE, prune_cost
    # (a kernel that refuses PRUNE, e.g. rows != cols: the "eq" rule's estimate, gen.perf.step_cost's too)
    return prune_cost(spec, rows, k, RTL_KERNEL_SCHEDULE, n, estimate_refused=True).cycles


def gemm_cycles(spec, mode: str, n: int | None, rows: int, k: int, cols: int) -> int:
    if mode == "SPARSE":
        return runtime_n_gemm_cycles(spec, n, rows, k, cols)
    return _perf_gemm(spec, "DENSE", rows, k, cols)


def layer_step_cycles(spec, layer: LayerShape, batch: int, modes: dict[str, tuple]) -> dict[str, int]:
    """Cycles of one layer's passes in one step (+ PRUNE when any pass is SPARSE)."""
    out = {}
    for p, (rows, k, cols) in layer.gemms(batch).items():
        mode, n = modes[p][0], modes[p][1]
        out[p] = gemm_cycles(spec, mode, n, rows, k, cols)
    prune = modes.get("PRUNE", ("NONE", None))
    out["PRUNE"] = prune_cycles(spec, layer.cout, layer.k, prune[1]) if prune[0] == "KERNEL" else 0
    return out


class StepLedger:
    """Counts, per layer, the steps spent in each (FF mode, BP mode) on one hardware, and prices them.

    ``runtime_n``: the kernel's list (regmap.json nm.runtime_n), or :func:`full_runtime_n` for a
    kernel with runtime N. The dense reference is the same steps with every GEMM DENSE (no PRUNE).
    """

    def __init__(self, spec, runtime_n, layers: list[LayerShape], method: str, batch: int):
        self.spec, self.runtime_n, self.layers = spec, tuple(runtime_n), layers
        self.method, self.batch = method, batch
        self.counts: dict[str, Counter] = {layer.name: Counter() for layer in layers}

    def record(self, phases: dict[str, Phase]) -> None:
        for layer in self.layers:
            modes = pass_modes(phases[layer.name], self.method, layer.needs_dx, self.spec.m, self.runtime_n,
                               spec=self.spec, layer=layer, batch=self.batch)
            self.counts[layer.name][tuple(sorted(modes.items()))] += 1

    def report(self) -> dict:
        dense_modes = {p: ("DENSE", None, "") for p in ("FF", "BP", "WU")}
        dense_modes["PRUNE"] = ("NONE", None, "")
        layers, total, total_dense = [], 0, 0
        for layer in self.layers:
            cyc = dense = 0
            usage: Counter = Counter()
            for key, steps in self.counts[layer.name].items():
                modes = dict(key)
                cyc += steps * sum(layer_step_cycles(self.spec, layer, self.batch, modes).values())
                dense += steps * sum(layer_step_cycles(self.spec, layer, self.batch, dense_modes).values())
                for p, (mode, n, why) in modes.items():
                    if p in ("FF", "BP"):
                        usage[f"{p} {mode}{'@' + str(n) if n else ''}{' (' + why + ')' if why else ''}"] += steps
            layers.append({"layer": layer.name, "cycles": cyc, "dense_cycles": dense,
                           "speedup": round(dense / cyc, 4) if cyc else None, "steps": dict(sorted(usage.items()))})
            total, total_dense = total + cyc, total_dense + dense
        return {"arch": self.spec.name, "runtime_n": list(self.runtime_n), "batch": self.batch,
                "cycles": total, "dense_cycles": total_dense,
                "speedup": round(total_dense / total, 4) if total else None, "layers": layers}


# ---- the hook for `make bench`: a layer-wise plan on a benchmark network ---------------------------

def network_plan_cost(spec, network_name: str, *, plan: str | None = None, n: int | None = None,
                      runtime_n=None, batch: int = 32, cheaper: bool = True) -> dict:
    """Modelled cycles of one BDWP training step of a gen.workloads network under a layer-wise plan.

    ``n``: the target kept per group (default the spec's n) at the spec's M. ``plan``: a rule
    (classifier-dense: the workload's own policy; ends-dense: also the first weight layer dense;
    all: the classifier too) and/or ``layer=N:M|dense`` entries by workload layer name. A pass runs
    SPARSE at its layer's n when the workload lowers it sparse (axis a multiple of M) and n is in
    ``runtime_n`` (default: the spec's regmap ``nm.runtime_n``; pass :func:`full_runtime_n` for a
    runtime-N kernel), DENSE otherwise, and (``cheaper``, the default) DENSE also where that costs no
    more modelled cycles than SPARSE + PRUNE (:func:`sparse_or_dense`; ``cheaper=False`` prices SPARSE
    at n regardless); SPARSE GEMMs cost :func:`runtime_n_gemm_cycles`. Returns
    per-layer n, modes, cycles, the dense-training cycles and the speedup, and the totals.
    """
    from gen.regmap import regmap
    from gen.workloads import lower_network, network
    n = spec.n if n is None else int(n)
    if runtime_n is None:
        runtime_n = regmap(spec)["nm"]["runtime_n"]
    rule, explicit = parse_plan(plan)
    layers = network(network_name)
    weight_layers = [la for la in layers if la.kind != "attn"]
    names = {la.name for la in layers}
    unknown = sorted(set(explicit) - names)
    if unknown:
        raise ValueError(f"plan names unknown layer(s) {', '.join(unknown)} of {network_name}")
    gemms = lower_network(network_name, batch=batch, m=spec.m, bdwp=True, dense_classifier=(rule != "all"))
    out, total, total_dense = [], 0, 0
    for la in layers:
        if la.name in explicit:
            target = explicit[la.name]
        elif la.kind == "attn" or (rule == "ends-dense" and la is weight_layers[0]) or \
                (rule == "ends-dense" and la is weight_layers[-1]):
            target = None
        else:
            target = (n, spec.m)
        phase = Phase(*target) if target else DENSE_PHASE
        mode = _phase_mode(phase, spec.m, tuple(runtime_n))
        layer_gemms = [g for g in gemms if g.layer == la.name]
        if cheaper and mode[0] == "SPARSE" and target:     # SPARSE only where it costs fewer modelled cycles
            dense_wins, why = sparse_or_dense(spec, mode[1], [(g.rows, g.k, g.cols, g.count)
                                                              for g in layer_gemms if g.sparse],
                                              (la.cout, la.reduction, la.count))
            if dense_wins:
                mode = ("DENSE", None, why)
        cyc = dense = 0
        modes = {}
        for g in layer_gemms:
            run = mode if g.sparse and target else ("DENSE", None, "dense pass")
            modes[g.pass_] = f"{run[0]}{'@' + str(run[1]) if run[1] else ''}"
            cyc += g.count * gemm_cycles(spec, run[0], run[1], g.rows, g.k, g.cols)
            dense += g.count * gemm_cycles(spec, "DENSE", None, g.rows, g.k, g.cols)
        if any(v.startswith("SPARSE") for v in modes.values()):
            cyc += la.count * prune_cycles(spec, la.cout, la.reduction, mode[1])
        out.append({"layer": la.name, "n": f"{target[0]}:{target[1]}" if target else "dense", "modes": modes,
                    "reason": mode[2] if target else "", "cycles": cyc, "dense_cycles": dense,
                    "speedup": round(dense / cyc, 4) if cyc else None})
        total, total_dense = total + cyc, total_dense + dense
    return {"arch": spec.name, "network": network_name, "batch": batch, "runtime_n": list(runtime_n),
            "plan": plan or "classifier-dense", "cycles": total, "dense_cycles": total_dense,
            "speedup": round(total_dense / total, 4) if total else None, "layers": out}
