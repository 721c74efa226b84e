"""The cycle model (gen/perf.py) validated against the RTL kernel measured in the Verilator harness.

    python -m gen.validate --out build/sat_2x8 [--network resnet18_cifar] [--batch 1]    # make validate ARCH=...
        [--memory '{"banking": "shared"}'] [--b-reuse true|false] [--key bench.json key prefix]

Runs every distinct kernel call of one BDWP training step of the network at the given batch —
the FF, BP and WU GEMMs of gen.workloads.lower_network (one call each: every shape is within the
kernel's limits) and the PRUNE call of every layer whose weights are pruned — on hostpy's rtl
backend with the same :class:`gen.memmodel.MemoryModel` the model is evaluated on, checks each
result bit for bit against hostpy.golden, and compares the measured cycles (ap_start's register
write to the ap_done interrupt, simulated in the RTL) with ``gen.perf.kernel_call_cycles`` /
``gen.perf.prune_call``. Writes ``model_vs_rtl_kernel`` (a list of {gemm, mode, rows, k, cols,
model_cycles, rtl_cycles, error}, error = (model - rtl) / rtl; a call the kernel refuses with
status bad_mode, i.e. a mode it does not implement, is listed with rtl_cycles None) and
``model_vs_rtl_kernel_max_error`` (max |error| over the measured calls) into ``<out>/reports/bench.json`` (other keys of that file are kept), plus the
memory model, the simulated cycles and the wall time. With the default key it then measures the PRUNE
calls of ``gen.perf.kernel_validation_calls`` (shapes on and off the grid, larger runtime n, a
memory-bound one; :func:`prune_calls_vs_rtl`) into ``prune_model_vs_rtl_kernel``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["validation_calls", "model_vs_rtl", "prune_calls_vs_rtl", "runtime_n_step", "main"]


def validation_calls(spec, network: str = "resnet18_cifar", batch: int = 1) -> list[dict]:
    """Distinct kernel calls of one BDWP step: {gemm, pass, mode, rows, k, cols}, GEMMs then PRUNEs."""
    from .workloads import lower_network, network as layers_of
    calls, seen = [], set()
    for g in lower_network(network, batch=batch, m=spec.m, bdwp=True):
        mode = "SPARSE" if (g.sparse and spec.sparse) else "DENSE"
        key = (mode, g.rows, g.k, g.cols)
        if key in seen:
            continue
        seen.add(key)
        calls.append({"gemm": f"{g.layer} {g.pass_}", "pass": g.pass_, "mode": mode, "rows": g.rows, "k": g.k,
                      "cols": g.cols})
    if spec.sparse:
        sparse_layers = {g.layer for g in lower_network(network, batch=batch, m=spec.m, bdwp=True) if g.sparse}
        for layer in layers_of(network):
            if layer.name not in sparse_layers:
                continue
            ff = next(g for g in lower_network(network, batch=batch, m=spec.m, bdwp=True)
                      if g.layer == layer.name and g.pass_ == "FF")
            key = ("PRUNE", ff.rows, ff.k, 0)
            if key in seen:
                continue
            seen.add(key)
            calls.append({"gemm": f"{layer.name} PRUNE", "pass": "PRUNE", "mode": "PRUNE", "rows": ff.rows,
                          "k": ff.k, "cols": 0})
    return calls


def _model_cycles(spec, call: dict, memory, n: int | None = None, b_reuse: bool | None = None) -> int | None:
    """The model's cycles of ``call`` at runtime ``n`` (None where this tree's gen/perf.py has no per-call RTL-kernel model).

    ``b_reuse``: the model's B reuse option (True: the ping-pong B buffer, sat_bbuf; False: B streamed
    for every output tile); None: gen/perf.py's default (``Schedule().b_reuse``)."""
    from . import perf
    if not hasattr(perf, "kernel_call_cycles") or not hasattr(perf, "prune_call"):
        return None
    if call["mode"] == "PRUNE":
        from .prune_layout import prune_bp_shape
        if prune_bp_shape(spec) is None:        # the kernel refuses PRUNE: nothing to model (prune_call raises)
            return None
        return int(perf.prune_call(spec, call["rows"], call["k"], memory, n=n).cycles)
    if call["mode"] == "DENSE":
        n = None
    if b_reuse is None:
        b_reuse = perf.Schedule().b_reuse
    return int(perf.kernel_call_cycles(spec, call["mode"], call["rows"], call["k"], call["cols"], memory,
                                       b_reuse=b_reuse, n=n))


def _run_on_rtl(acc, call: dict, rng, n: int | None = None) -> bool:
    """Run ``call`` (SPARSE/PRUNE at runtime ``n``, default the spec's) on the kernel through the
    Accelerator (one kernel call); True if bit-exact vs golden."""
    from hostpy import golden, nm
    s = acc.spec
    hi = 1 << (s.data_bits - 1)
    dt = acc.arch.data_dtype
    rows, k, cols = call["rows"], call["k"], call["cols"]
    n = s.n if n is None else n
    a = rng.integers(-hi, hi, (rows, k)).astype(dt)
    if call["mode"] == "PRUNE":
        got = acc.prune(a, n=n)
        ff, bp = golden.prune(a, n, s.m, data_bits=s.data_bits)
        return all(np.array_equal(x, y) for x, y in ((got.ff.values, ff.values), (got.ff.indices, ff.indices),
                                                      (got.bp.values, bp.values), (got.bp.indices, bp.indices)))
    b = rng.integers(-hi, hi, (k, cols)).astype(dt)
    if call["mode"] == "SPARSE":
        comp = nm.compress(a, n, s.m, axis=1)
        return np.array_equal(acc.gemm_sparse(comp, b), golden.gemm_sparse(comp, b, data_bits=s.data_bits,
                                                                            acc_bits=s.acc_bits))
    return np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits))


def model_vs_rtl(out_dir: str | Path, *, network: str = "resnet18_cifar", batch: int = 1, memory=None,
                 b_reuse: bool | None = None, log=print) -> dict:
    """Measure every distinct call on the rtl backend and compare with the model; returns the bench.json keys."""
    import hostpy
    from hostpy.errors import KernelError
    from .memmodel import MemoryModel
    memory = memory or MemoryModel()
    acc = hostpy.open(out_dir, backend="rtl", memory=memory)
    dev = acc.device
    spec = acc.spec
    rng = np.random.default_rng(0)
    rows = []
    t0 = time.monotonic()
    sim0, cyc0 = dev.sim_seconds, dev.model.cycles
    calls = validation_calls(spec, network, batch)
    if _model_cycles(spec, calls[0], memory, b_reuse=b_reuse) is None:
        log("validate: this tree's gen/perf.py has no per-call RTL-kernel model (kernel_call_cycles, prune_call): "
            "measuring the RTL only")
    log(f"validate: {spec.name}: {len(calls)} distinct kernel calls of one {network} BDWP step at batch {batch} "
        f"on the rtl backend, memory {memory}")
    for call in calls:
        before = acc.calls
        t1 = time.monotonic()
        try:
            exact = _run_on_rtl(acc, call, rng)
        except KernelError as e:
            if "bad_mode" not in str(e):
                raise
            rows.append({"gemm": call["gemm"], "mode": call["mode"], "rows": call["rows"], "k": call["k"],
                         "cols": call["cols"], "model_cycles": _model_cycles(spec, call, memory, b_reuse=b_reuse), "rtl_cycles": None,
                         "error": None, "bit_exact": None, "note": "refused by the RTL kernel (status bad_mode)"})
            log(f"  {call['gemm']:24s} {call['mode']:6s} refused by the RTL kernel (bad_mode): not measured")
            continue
        if acc.calls - before != 1:
            raise RuntimeError(f"{call['gemm']}: expected one kernel call, the host made {acc.calls - before}")
        rtl = dev.last_cycles
        model = _model_cycles(spec, call, memory, b_reuse=b_reuse)
        err = None if model is None else (model - rtl) / rtl
        rec = {"gemm": call["gemm"], "mode": call["mode"], "rows": call["rows"], "k": call["k"], "cols": call["cols"],
               "model_cycles": model, "rtl_cycles": rtl, "error": None if err is None else round(err, 5),
               "bit_exact": bool(exact)}
        rows.append(rec)
        log(f"  {call['gemm']:24s} {call['mode']:6s} {call['rows']:5d} x {call['k']:5d} x {call['cols']:5d}  "
            f"rtl {rtl:9d}  model {model if model is not None else '-':>9}  "
            f"error {'-' if err is None else f'{100 * err:+6.2f} %'}  {'bit-exact' if exact else 'MISMATCH'}  "
            f"({time.monotonic() - t1:.1f} s)")
    wall = time.monotonic() - t0
    errs = [abs(r["error"]) for r in rows if r["error"] is not None]
    sim_cycles = dev.model.cycles - cyc0
    out = {
        "model_vs_rtl_kernel": rows,
        "model_vs_rtl_kernel_max_error": round(max(errs), 5) if errs else None,
        "model_vs_rtl_kernel_setup": {
            "network": network, "batch": batch, "arch": spec.name, "memory": memory.to_dict(),
            "rtl_cycles": "simulated in the Verilator-built RTL kernel (gen/rtlsim.py): ap_start register write "
                          "to the ap_done interrupt",
            "model_cycles": "gen.perf.kernel_call_cycles / prune_call on the same MemoryModel",
            "model_b_reuse": b_reuse if b_reuse is not None else _perf_default_b_reuse(),
            "calls": len(rows), "measured": sum(r["rtl_cycles"] is not None for r in rows),
            "all_bit_exact": all(r["bit_exact"] is not False for r in rows),
            "sim_cycles": sim_cycles, "wall_s": round(wall, 1),
            "sim_cycles_per_s": round(sim_cycles / (dev.sim_seconds - sim0)) if dev.sim_seconds > sim0 else 0},
    }
    acc.close()
    log(f"validate: max |error| {out['model_vs_rtl_kernel_max_error']}; {sim_cycles} cycles simulated, "
        f"{wall:.0f} s wall")
    return out


def prune_calls_vs_rtl(out_dir: str | Path, *, log=print) -> dict:
    """The PRUNE calls of ``gen.perf.kernel_validation_calls`` (several shapes, n_hw and larger runtime n,
    a memory-bound one) measured on the rtl backend, each on its own MemoryModel, bit-exact against
    hostpy.golden.prune, against ``gen.perf.prune_call``. Returns the bench.json keys
    ``prune_model_vs_rtl_kernel`` (rows {kind, rows, k, n, memory, model_cycles, rtl_cycles, error,
    memory_bound, bit_exact}) and ``prune_model_vs_rtl_kernel_max_error`` (over the calls the memory does
    not bound: the model is meant to be exact there). A kernel that refuses PRUNE has no such calls."""
    import hostpy
    from . import perf
    from .spec import load_spec
    spec = load_spec(Path(out_dir) / "spec.json")
    calls = [c for c in perf.kernel_validation_calls(spec) if c["mode"] == "PRUNE"]
    rng = np.random.default_rng(2)
    rows, accs = [], {}
    t0 = time.monotonic()
    try:
        for call in calls:
            mem = call["memory"]
            if mem not in accs:
                accs[mem] = hostpy.open(out_dir, backend="rtl", memory=mem)
            acc = accs[mem]
            n = spec.n if call["n"] is None else call["n"]
            before = acc.calls
            exact = _run_on_rtl(acc, call, rng, n)
            if acc.calls - before != 1:
                raise RuntimeError(f"PRUNE {call['rows']}x{call['k']}: expected one kernel call, the host made "
                                   f"{acc.calls - before}")
            rtl = acc.device.last_cycles
            g = perf.prune_call(spec, call["rows"], call["k"], mem, n=n)
            bound = any(not key.startswith("W record feed") for key in g.stalls)
            rec = {"kind": call["kind"], "rows": call["rows"], "k": call["k"], "n": n, "memory": mem.to_dict(),
                   "model_cycles": g.cycles, "rtl_cycles": rtl, "error": round((g.cycles - rtl) / rtl, 5),
                   "memory_bound": bound, "bit_exact": bool(exact)}
            rows.append(rec)
            log(f"  PRUNE {call['kind']:16s} {call['rows']:4d} x {call['k']:5d} n={n:<2d} rtl {rtl:7d}  model "
                f"{g.cycles:7d}  {g.cycles - rtl:+5d} ({100 * rec['error']:+.2f} %){'  memory-bound' if bound else ''}"
                f"  {'bit-exact' if exact else 'MISMATCH'}")
    finally:
        for acc in accs.values():
            acc.close()
    exact_rows = [abs(r["error"]) for r in rows if not r["memory_bound"]]
    return {"prune_model_vs_rtl_kernel": rows,
            "prune_model_vs_rtl_kernel_max_error": round(max(exact_rows), 5) if exact_rows else None,
            "prune_model_vs_rtl_kernel_setup": {"arch": spec.name, "calls": len(rows),
                                                "all_bit_exact": all(r["bit_exact"] for r in rows),
                                                "wall_s": round(time.monotonic() - t0, 1)}}


def runtime_n_step(out_dir: str | Path, ns, *, network: str = "resnet18_cifar", batch: int = 1, memory=None,
                   log=print) -> list[dict]:
    """One BDWP training step of ``network`` at each runtime n of ``ns``, measured on ONE kernel.

    Every distinct call (gen.workloads.lower_network; the sparse layers' GEMMs at n, their PRUNE at
    n, the other GEMMs DENSE) runs once on the Verilator-built kernel (rtl backend, ``memory``),
    bit-exact against hostpy.golden; the step's cycles are the measured cycles weighted by each
    call's count in the step. The dense reference is the same step with every GEMM in the same
    kernel's DENSE mode and no PRUNE (measured once). Returns per n: {n, m, rtl_step_cycles,
    rtl_dense_step_cycles, speedup_rtl_measured, model_step_cycles (gen.perf on the same calls and
    memory), model_error, bit_exact}.
    """
    import hostpy
    from .memmodel import MemoryModel
    from .workloads import lower_network, network as layers_of
    memory = memory or MemoryModel()
    acc = hostpy.open(out_dir, backend="rtl", memory=memory)
    spec = acc.spec
    rng = np.random.default_rng(1)
    gemms = lower_network(network, batch=batch, m=spec.m, bdwp=True)
    sparse_layers = {g.layer for g in gemms if g.sparse}
    prunes = [(la.cout, la.reduction, la.count) for la in layers_of(network) if la.name in sparse_layers]
    measured: dict[tuple, tuple[int, int, bool]] = {}      # (mode, n, rows, k, cols) -> (rtl, model, exact)

    def run(mode: str, n: int | None, rows: int, k: int, cols: int) -> tuple[int, int, bool]:
        key = (mode, n, rows, k, cols)
        if key not in measured:
            call = {"mode": mode, "rows": rows, "k": k, "cols": cols}
            before = acc.calls
            exact = _run_on_rtl(acc, call, rng, n)
            if acc.calls - before != 1:
                raise RuntimeError(f"{mode} {rows}x{k}x{cols}: expected one kernel call, the host made "
                                   f"{acc.calls - before}")
            measured[key] = (acc.device.last_cycles, _model_cycles(spec, call, memory, n), exact)
        return measured[key]

    def step(n: int | None) -> tuple[int, int, bool]:
        rtl = model = 0
        exact = True
        for g in gemms:
            mode = "SPARSE" if (g.sparse and n is not None) else "DENSE"
            r, mdl, ok = run(mode, n if mode == "SPARSE" else None, g.rows, g.k, g.cols)
            rtl, model, exact = rtl + g.count * r, model + g.count * mdl, exact and ok
        for rows, k, count in (prunes if n is not None else []):
            r, mdl, ok = run("PRUNE", n, rows, k, 0)
            rtl, model, exact = rtl + count * r, model + count * mdl, exact and ok
        return rtl, model, exact

    t0 = time.monotonic()
    log(f"runtime n: {spec.name}: one {network} BDWP step at batch {batch} per n, measured on the rtl backend")
    dense_rtl, dense_model, dense_ok = step(None)
    log(f"  dense (DENSE mode, no PRUNE): rtl {dense_rtl} cycles, model {dense_model}  ({time.monotonic() - t0:.0f} s)")
    out = []
    for n in ns:
        rtl, model, ok = step(n)
        rec = {"n": n, "m": spec.m, "rtl_step_cycles": rtl, "rtl_dense_step_cycles": dense_rtl,
               "speedup_rtl_measured": round(dense_rtl / rtl, 4), "model_step_cycles": model,
               "model_dense_step_cycles": dense_model, "model_error": round((model - rtl) / rtl, 5),
               "bit_exact": bool(ok and dense_ok)}
        out.append(rec)
        log(f"  n={n}:{spec.m}  rtl {rtl} cycles  speedup {rec['speedup_rtl_measured']:.3f}x  model {model} "
            f"({100 * rec['model_error']:+.2f} %)  {'bit-exact' if rec['bit_exact'] else 'MISMATCH'}  "
            f"({time.monotonic() - t0:.0f} s)")
    acc.close()
    return out
def _perf_default_b_reuse() -> bool | None:
    from . import perf
    return getattr(perf.Schedule(), "b_reuse", None)


def write_bench(out_dir: str | Path, keys: dict) -> Path:
    """Merge ``keys`` into ``<out>/reports/bench.json`` (atomically; other keys kept)."""
    path = Path(out_dir) / "reports" / "bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update(keys)
    fd, tmp = tempfile.mkstemp(prefix=".bench.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gen.validate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--network", default="resnet18_cifar")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--memory", default="{}", help='MemoryModel fields as JSON, e.g. \'{"banking": "shared"}\'')
    ap.add_argument("--key", default="model_vs_rtl_kernel", help="bench.json key prefix (another memory: another key)")
    ap.add_argument("--b-reuse", choices=("default", "true", "false"), default="default",
                    help="the model's B reuse (gen.perf kernel_call b_reuse): true = the ping-pong B buffer of the "
                         "RTL kernel (sat_bbuf), false = B streamed for every output tile; default: gen.perf's Schedule")
    args = ap.parse_args(argv)
    from hostpy.errors import HostError
    from .memmodel import MemoryModel
    try:
        keys = model_vs_rtl(args.out, network=args.network, batch=args.batch,
                            memory=MemoryModel(**json.loads(args.memory)),
                            b_reuse={"default": None, "true": True, "false": False}[args.b_reuse])
        if args.key != "model_vs_rtl_kernel":
            keys = {k.replace("model_vs_rtl_kernel", args.key, 1): v for k, v in keys.items()}
        else:      # the PRUNE calls of gen.perf.kernel_validation_calls (shapes, runtime n, memory bound)
            print("validate: PRUNE calls of gen.perf.kernel_validation_calls on the rtl backend")
            keys.update(prune_calls_vs_rtl(args.out))
    except HostError as e:
        print(f"validate: error: {e}", file=sys.stderr)
        return 2
    path = write_bench(args.out, keys)
    print(f"validate: wrote model_vs_rtl_kernel to {path}")
    ok = keys[f"{args.key}_setup"]["all_bit_exact"] and keys.get("prune_model_vs_rtl_kernel_setup",
                                                                   {"all_bit_exact": True})["all_bit_exact"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
