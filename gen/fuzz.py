"""Random-job fuzzing of the RTL kernel through hostpy's rtl backend, against hostpy.golden.

    python -m gen.fuzz --out build/sat_2x8 [--seconds 60] [--seed 1]     # make fuzz ARCH=... SECONDS=... SEED=...
    python -m gen.fuzz --out build/sat_2x8 --replay '<job json>'           # one job, e.g. a printed reproducer

Every job draws, from ``numpy.random.default_rng([seed, job index])`` (so a run is reproducible
from its seed, and job i of two runs with one seed is the same job): a mode the arch has (SPARSE,
DENSE, PRUNE), for SPARSE and PRUNE a kept-per-group ``n`` from regmap.json ``nm.runtime_n`` (runtime N;
drawn last, so the rest of a job is what it was before runtime N), a shape biased to the edges (1, R-1, R, R+1, M-1, M+1, ... and random sizes up to
a few tiles), value distributions (uniform, ties of equal magnitude incl. -2^(d-1) next to
2^(d-1)-1, the extremes only, all-zero groups, mostly zeros), and a memory model (read and write
latency, words per cycle, per-bank or shared banking, stall rate and stall seed). The job runs on
the kernel through the rtl backend (Accelerator front end, one kernel call) and its result is
compared bit for bit with hostpy.golden. A mismatch, a hang (no ap_done within the backend's
cycle limit) or a kernel error (status, AXI protocol violation) is shrunk greedily (smaller
shapes, simpler values, plainer memory) to a minimal job that still fails, printed as a one-line
``--replay`` command. Results go to ``<out>/reports/fuzz.json``: ``jobs`` (and per mode), ``tiles``
(R x C output tiles of GEMM jobs plus R-lane x M-group tiles of PRUNE jobs; ``gemm_tiles`` the
former alone), ``sim_cycles`` (clock cycles
simulated), ``kernel_cycles`` (ap_start to ap_done, summed), ``cycles_per_s`` (sim_cycles per
second of wall time spent in the simulation library), ``mismatches``, ``hangs``, ``errors``,
``seed``, ``jobs_per_n`` (SPARSE and PRUNE jobs per n), ``modes`` (fuzzed) and ``modes_refused_by_kernel`` (modes of regmap.json a 1-element probe
showed the kernel refuses with status bad_mode, i.e. not implemented: reported, not fuzzed), and
the reproducers.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

__all__ = ["Job", "draw_job", "run_job", "shrink", "fuzz", "main"]

KINDS = ("random", "ties", "extremes", "zero_groups", "sparse")
MAX_REPORTED = 20          # failures printed and kept in the report (all are counted)


@dataclass(frozen=True)
class Job:
    mode: str
    rows: int
    k: int
    cols: int
    a_kind: str
    b_kind: str
    data_seed: int
    read_latency: int
    write_latency: int
    words_per_cycle: float
    banking: str
    stall_rate: float
    stall_seed: int
    n: int = 0                 # SPARSE/PRUNE: kept per group (runtime N); 0 = the spec's n

    def n_of(self, spec) -> int:
        return self.n or spec.n

    def memory(self):
        from .memmodel import MemoryModel
        return MemoryModel(read_latency=self.read_latency, write_latency=self.write_latency,
                           words_per_cycle=self.words_per_cycle, banking=self.banking, stall_rate=self.stall_rate,
                           seed=self.stall_seed)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    def tiles(self, spec) -> int:
        if self.mode == "PRUNE":
            return -(-self.rows // spec.rows) * -(-self.k // spec.m)
        return -(-self.rows // spec.rows) * -(-self.cols // spec.cols)


def _edge_size(rng, tile: int, limit: int, span: int) -> int:
    """A size near a multiple of ``tile`` or random up to ``span`` tiles, within [1, limit]."""
    r = rng.random()
    if r < 0.15:
        v = 1
    elif r < 0.55:
        v = int(rng.integers(1, span + 1)) * tile + int(rng.integers(-1, 2))
    else:
        v = int(rng.integers(1, span * tile + 1))
    return int(min(max(v, 1), limit))


def draw_job(spec, modes: list[str], seed: int, index: int, runtime_n: list[int] | None = None) -> Job:
    """Job ``index`` of ``seed``; SPARSE/PRUNE draw n from ``runtime_n`` (default: regmap.json nm.runtime_n of the spec)."""
    if runtime_n is None:
        from .regmap import regmap
        runtime_n = regmap(spec)["nm"]["runtime_n"]
    rng = np.random.default_rng([seed, index])
    mode = str(rng.choice(modes))
    step = spec.m
    big = rng.random() < 0.1                      # now and then a longer job
    rows = _edge_size(rng, spec.rows, spec.max_dim, 6 if big else 3)
    cols = _edge_size(rng, spec.cols, spec.max_dim, 6 if big else 3) if mode != "PRUNE" else 0
    k = _edge_size(rng, step, spec.max_k, 48 if big else 12)
    lat = [1, 2, 8, 32, 64, 100, 200]
    job = Job(mode=mode, rows=rows, k=k, cols=cols, a_kind=str(rng.choice(KINDS)), b_kind=str(rng.choice(KINDS)),
              data_seed=int(rng.integers(0, 2**31)), read_latency=int(rng.choice(lat)),
              write_latency=int(rng.choice(lat)), words_per_cycle=float(rng.choice([1.0, 1.0, 0.5, 0.25, 0.8])),
              banking=str(rng.choice(["per_bank", "per_bank", "shared"])),
              stall_rate=float(rng.choice([0.0, 0.0, 0.05, 0.2, 0.5])), stall_seed=int(rng.integers(0, 2**31)))
    if mode != "DENSE" and runtime_n:
        job = replace(job, n=int(rng.choice(runtime_n)))
    return job


def _operand(rng, spec, shape, kind) -> np.ndarray:
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    if kind == "random":
        a = rng.integers(lo, hi + 1, size=shape)
    elif kind == "ties":
        a = rng.choice(np.array([lo, hi, -hi, 1, -1, 0, hi // 2, -(hi // 2)]), size=shape)
    elif kind == "extremes":
        a = rng.choice(np.array([lo, hi]), size=shape)
    elif kind == "zero_groups":
        a = rng.integers(lo, hi + 1, size=shape)
        grp = np.arange(shape[1]) // spec.m
        a[:, grp % 2 == 1] = 0
        a[rng.random(shape[0]) < 0.2, :] = 0
    elif kind == "sparse":
        a = np.where(rng.random(shape) < 0.1, rng.integers(lo, hi + 1, size=shape), 0)
    else:
        raise ValueError(f"unknown value kind {kind!r}")
    return a.astype(np.dtype(f"int{spec.mem_data_bits}"))


def expected_and_actual(acc, job: Job):
    """(golden result, kernel result) of ``job`` on the accelerator ``acc`` (rtl backend)."""
    from hostpy import golden, nm
    s = acc.spec
    rng = np.random.default_rng(job.data_seed)
    n = job.n_of(s)
    if job.mode == "PRUNE":
        w = _operand(rng, s, (job.rows, job.k), job.a_kind)
        ff, bp = golden.prune(w, n, s.m, data_bits=s.data_bits)
        got = acc.prune(w, n)
        exp = (ff.values, ff.indices, bp.values, bp.indices)
        act = (got.ff.values, got.ff.indices, got.bp.values, got.bp.indices)
        return exp, act
    a = _operand(rng, s, (job.rows, job.k), job.a_kind)
    b = _operand(rng, s, (job.k, job.cols), job.b_kind)
    if job.mode == "SPARSE":
        comp = nm.compress(a, n, s.m, axis=1)
        return (golden.gemm_sparse(comp, b, data_bits=s.data_bits, acc_bits=s.acc_bits),), (acc.gemm_sparse(comp, b),)
    return (golden.gemm_dense(a, b, data_bits=s.data_bits, acc_bits=s.acc_bits),), (acc.gemm(a, b),)


def run_job(acc, job: Job) -> str | None:
    """Run one job; None when it matched, else 'mismatch: ...', 'hang: ...' or 'error: ...'."""
    from hostpy.errors import DeviceTimeoutError, HostError
    dev = acc.device
    dev.model.configure(job.memory())
    try:
        exp, act = expected_and_actual(acc, job)
    except DeviceTimeoutError as e:
        return f"hang: {e}"
    except HostError as e:
        return f"error: {type(e).__name__}: {e}"
    for i, (e, a) in enumerate(zip(exp, act)):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape or not np.array_equal(e.astype(np.int64), a.astype(np.int64)):
            bad = int((e != a).sum()) if e.shape == a.shape else -1
            return f"mismatch: output {i} differs in {bad} of {e.size} elements"
    return None


def kernel_modes(acc) -> tuple[list[str], list[str]]:
    """(modes of regmap.json the kernel runs, modes it refuses with status bad_mode), by a 1-element probe."""
    from hostpy.errors import KernelError
    run, refused = [], []
    for mode in sorted(acc.arch.regmap["modes"]):
        probe = Job(mode, 1, 1, 0 if mode == "PRUNE" else 1, "random", "random", 0, 8, 8, 1.0, "per_bank", 0.0, 0)
        try:
            expected_and_actual(acc, probe)
        except KernelError as e:
            if "bad_mode" in str(e):
                refused.append(mode)
                continue
        run.append(mode)
    return run, refused


def _smaller(job: Job) -> list[Job]:
    """Candidate simplifications of ``job``, most aggressive first."""
    out = []
    for f in ("rows", "k", "cols"):
        v = getattr(job, f)
        if f == "cols" and job.mode == "PRUNE":
            continue
        for nv in sorted({1, v // 2, v - 1}):
            if 1 <= nv < v:
                out.append(replace(job, **{f: nv}))
    if job.stall_rate:
        out.append(replace(job, stall_rate=0.0))
    if job.words_per_cycle != 1.0:
        out.append(replace(job, words_per_cycle=1.0))
    if job.banking != "per_bank":
        out.append(replace(job, banking="per_bank"))
    if (job.read_latency, job.write_latency) != (1, 1):
        out.append(replace(job, read_latency=1, write_latency=1))
    for f in ("a_kind", "b_kind"):
        if getattr(job, f) != "random":
            out.append(replace(job, **{f: "random"}))
    if job.n:
        out.append(replace(job, n=0))          # the spec's n
    return out


def shrink(acc, job: Job, failure: str, *, budget_s: float = 120.0, log=print) -> tuple[Job, str]:
    """Greedy shrinking: take the first simpler job that still fails (of the same kind), until none does."""
    kind = failure.split(":")[0]
    t_end = time.monotonic() + budget_s
    progress = True
    while progress and time.monotonic() < t_end:
        progress = False
        for cand in _smaller(job):
            if time.monotonic() >= t_end:
                break
            res = run_job(acc, cand)
            if res is not None and res.split(":")[0] == kind:
                job, failure, progress = cand, res, True
                break
    return job, failure


def replay_command(out_dir, job: Job) -> str:
    return f"python -m gen.fuzz --out {shlex.quote(str(out_dir))} --replay {shlex.quote(job.to_json())}"


def fuzz(out_dir: str | Path, *, seconds: float = 60.0, seed: int = 1, max_jobs: int | None = None,
         report: str | Path | None = None, log=print) -> dict:
    """Run random jobs for ``seconds`` (or ``max_jobs``); write and return the report."""
    import hostpy
    out_dir = Path(out_dir)
    t_open = time.monotonic()
    acc = hostpy.open(out_dir, backend="rtl")
    dev = acc.device
    log(f"fuzz: {acc.spec.name}: rtl backend ready in {time.monotonic() - t_open:.1f} s; seed {seed}, "
        f"{seconds:g} s budget")
    modes, refused = kernel_modes(acc)
    if refused:
        log(f"fuzz: the kernel refuses mode(s) {', '.join(refused)} of regmap.json with status bad_mode "
            f"(not implemented in this RTL kernel): fuzzing {', '.join(modes)} only")
    jobs = tiles = gemm_tiles = mismatches = hangs = errors = 0
    shrunk: set[str] = set()
    per_mode: dict[str, int] = {}
    per_n: dict[int, int] = {}
    failures = []
    cycles0, kcycles0, sim0, cpu0 = dev.model.cycles, dev.total_cycles, dev.sim_seconds, dev.sim_cpu_seconds
    t0 = time.monotonic()
    i = 0
    while (max_jobs is None or i < max_jobs) and time.monotonic() - t0 < seconds:
        job = draw_job(acc.spec, modes, seed, i, list(acc.runtime_n))
        i += 1
        res = run_job(acc, job)
        jobs += 1
        if job.mode != "DENSE":
            per_n[job.n_of(acc.spec)] = per_n.get(job.n_of(acc.spec), 0) + 1
        tiles += job.tiles(acc.spec)
        per_mode[job.mode] = per_mode.get(job.mode, 0) + 1
        if job.mode != "PRUNE":
            gemm_tiles += job.tiles(acc.spec)
        if res is None:
            continue
        kind = res.split(":")[0]
        if kind == "mismatch":
            mismatches += 1
        elif kind == "hang":
            hangs += 1
        else:
            errors += 1
        # The first failure of each kind (mismatch, hang, error) is shrunk; the first few are printed
        # and kept in the report, the rest only counted.
        nfail = mismatches + hangs + errors
        if kind not in shrunk:
            shrunk.add(kind)
            small, why = shrink(acc, job, res, log=log)
        else:
            small, why = job, res
        cmd = replay_command(out_dir, small)
        if nfail <= MAX_REPORTED:
            log(f"fuzz: job {i - 1} FAILED ({res}): {job.to_json()}")
            log(f"fuzz: {'minimal ' if small != job else ''}reproducer ({why}):\n  {cmd}")
            failures.append({"job": i - 1, "failure": res, "minimal": asdict(small), "minimal_failure": why,
                             "replay": cmd})
        elif nfail == MAX_REPORTED + 1:
            log(f"fuzz: more than {MAX_REPORTED} failures: counting the rest")
    wall = time.monotonic() - t0
    sim_cycles = dev.model.cycles - cycles0
    sim_s = dev.sim_seconds - sim0
    rep = {"arch": acc.spec.name, "seed": seed, "modes": modes, "modes_refused_by_kernel": refused, "seconds": round(wall, 2), "jobs": jobs, "jobs_per_mode": per_mode,
           "jobs_per_n": {str(k): v for k, v in sorted(per_n.items())}, "tiles": tiles, "gemm_tiles": gemm_tiles,
           "sim_cycles": sim_cycles, "kernel_cycles": dev.total_cycles - kcycles0,
           "cycles_per_s": round(sim_cycles / sim_s) if sim_s else 0,
           "cycles_per_s_wall": round(sim_cycles / wall) if wall else 0,
           "cycles_per_cpu_s": round(sim_cycles / (dev.sim_cpu_seconds - cpu0)) if dev.sim_cpu_seconds > cpu0 else 0,
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "mismatches": mismatches, "hangs": hangs, "errors": errors, "failures": failures,
           "note": "cycles_per_s: simulated clock cycles per second of wall time inside the rtl backend's "
                   "execute (register programming, buffer copies, the Verilator model); cycles_per_s_wall: over "
                   "the whole fuzz loop incl. operand generation, golden model and packing; cycles_per_cpu_s: "
                   "per CPU second of this (single-threaded) process inside execute, i.e. on one core whatever "
                   "the machine's load"}
    acc.close()
    path = Path(report) if report else out_dir / "reports" / "fuzz.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rep, indent=2) + "\n")
    log(f"fuzz: {jobs} jobs, {tiles} tiles, {sim_cycles} cycles simulated in {wall:.1f} s "
        f"({rep['cycles_per_s']} cycles/s in the simulator), {mismatches} mismatches, {hangs} hangs, "
        f"{errors} errors -> {path}")
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gen.fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="generated project directory (make gen ARCH=...)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-jobs", type=int, default=None)
    ap.add_argument("--report", default=None, help="report path (default <out>/reports/fuzz.json)")
    ap.add_argument("--replay", default=None, help="run one job given as JSON (a printed reproducer)")
    args = ap.parse_args(argv)
    from hostpy.errors import HostError
    try:
        if args.replay:
            import hostpy
            job = Job(**json.loads(args.replay))
            with hostpy.open(args.out, backend="rtl") as acc:
                res = run_job(acc, job)
            print(f"fuzz: replay {'passed' if res is None else 'FAILED: ' + res}")
            return 0 if res is None else 1
        rep = fuzz(args.out, seconds=args.seconds, seed=args.seed, max_jobs=args.max_jobs, report=args.report)
    except HostError as e:
        print(f"fuzz: error: {e}", file=sys.stderr)
        return 2
    return 0 if rep["mismatches"] == rep["hangs"] == rep["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
