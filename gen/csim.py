"""C-simulation of the generated HLS kernel with g++ (no Xilinx tools needed).

Two products, both under ``<out>/work/csim/`` and both cached by a hash of their sources and flags:

* ``libsat_csim.so``: the kernel + the C API (``hls/sat_csim_api.cpp``), the shared library the
  host's csim backend loads (contract: docs/ARCHITECTURE.md);
* ``sat_tb``: the generated C testbench (``hls/sat_tb.cpp``) linked against that library. It reads
  the binary vectors this module writes from the golden model (``hostpy.golden``) and compares
  every output bit for bit.

``python -m gen.csim --out build/X`` (what ``make csim`` runs) writes the vectors, builds both, runs
the testbench and exits 0 only if every case is bit-identical.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hostpy import golden, nm
from hostpy.abi import Abi

from .atomic import write_tree
from .regmap import MODES, STATUS_BITS, kernel_args, regmap
from .spec import ArchSpec, SpecError, load_spec

__all__ = ["CsimError", "Case", "AP_TYPES_DIR", "CXXFLAGS", "build_csim_library", "build_testbench",
           "csim_cases", "runtime_n_values", "gemm_buffers", "prune_buffers", "write_vectors", "run_testbench", "run_csim", "main"]

REPO = Path(__file__).resolve().parent.parent
AP_TYPES_DIR = REPO / ".deps" / "ap_types"
CXX = "g++"
CXXFLAGS = ("-std=c++14", "-O2", "-fPIC", "-Wno-unknown-pragmas")
LIB_NAME = "libsat_csim.so"
TB_NAME = "sat_tb"
TB_SOURCE = "sat_tb.cpp"
VECTOR_MAGIC = b"SATVEC2\0"


class CsimError(RuntimeError):
    """The C-simulation could not be built or run (missing tool, compile error, bad output dir)."""


# ---- building --------------------------------------------------------------------------------
def _csim_dir(out_dir: Path) -> Path:
    return Path(out_dir).resolve() / "work" / "csim"


def _check_toolchain() -> str:
    cxx = shutil.which(CXX)
    if cxx is None:
        raise CsimError(f"{CXX} not found on PATH: the C-simulation needs a C++14 compiler; run make setup")
    if not (AP_TYPES_DIR / "ap_int.h").is_file():
        raise CsimError(f"Xilinx ap_types headers not found in {AP_TYPES_DIR}; run make setup")
    return cxx


def _hls_sources(out_dir: Path) -> tuple[list[Path], list[Path]]:
    """(kernel + C API .cpp files, headers) of a generated project, sorted."""
    hls = Path(out_dir).resolve() / "hls"
    if not hls.is_dir():
        raise CsimError(f"{hls} does not exist: generate the project first (make gen ARCH=...)")
    cpps = sorted(p for p in hls.glob("*.cpp") if p.name != TB_SOURCE)
    if not cpps:
        raise CsimError(f"no kernel sources in {hls}")
    return cpps, sorted(hls.glob("*.h"))


def _digest(paths: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    for arg in flags:
        h.update(arg.encode() + b"\0")
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _compile_cached(target: Path, cmd_tail: list[str], inputs: list[Path], log) -> tuple[Path, bool]:
    """Compile into ``target`` unless its recorded hash matches; atomic (temp file + rename)."""
    cxx = _check_toolchain()
    digest = _digest(inputs, [cxx, *cmd_tail])
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    cmd = [cxx, *cmd_tail, "-o", str(tmp)]
    log(f"csim: compiling {target.name}: {' '.join(cmd)}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CsimError(f"g++ failed building {target.name} (exit {proc.returncode}):\n{proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    stamp.write_text(digest + "\n")
    return target, True


def build_csim_library(out_dir: str | Path, *, log=lambda msg: None) -> Path:
    """Compile ``out_dir/hls`` (kernel + C API, not the testbench) into ``work/csim/libsat_csim.so``."""
    cpps, headers = _hls_sources(Path(out_dir))
    tail = [*CXXFLAGS, "-shared", f"-I{AP_TYPES_DIR}", *map(str, cpps)]
    lib, _ = _compile_cached(_csim_dir(Path(out_dir)) / LIB_NAME, tail, cpps + headers, log)
    return lib


def build_testbench(out_dir: str | Path, *, log=lambda msg: None) -> Path:
    """Compile the generated C testbench against the library into ``work/csim/sat_tb``."""
    out_dir = Path(out_dir)
    lib = build_csim_library(out_dir, log=log)
    tb = Path(out_dir).resolve() / "hls" / TB_SOURCE
    if not tb.is_file():
        raise CsimError(f"{tb} does not exist: regenerate the project")
    _, headers = _hls_sources(out_dir)
    tail = [*CXXFLAGS, f"-I{AP_TYPES_DIR}", str(tb), f"-L{lib.parent}", "-lsat_csim", "-Wl,-rpath,$ORIGIN"]
    exe, _ = _compile_cached(lib.parent / TB_NAME, tail, [tb, lib, *headers], log)
    return exe


# ---- vectors -----------------------------------------------------------------------------------
@dataclass
class Case:
    """One kernel call: scalars, input buffers and the golden model's expected outputs, all as memory
    ABI v2 bytes (hostpy.abi.Abi), and the status register the kernel must end with."""

    name: str
    mode: str
    rows: int
    k: int
    cols: int
    n: int
    status: int = 0
    buffers: dict[str, bytes] = field(default_factory=dict)     # arg name -> input or expected bytes

    def to_bytes(self, spec: ArchSpec) -> bytes:
        """The testbench's case file: header, then one section per pointer argument in order."""
        mode = MODES[self.mode] if isinstance(self.mode, str) else int(self.mode)
        parts = [VECTOR_MAGIC, struct.pack("<6I", mode, self.rows, self.k, self.cols, self.n, self.status)]
        for a in kernel_args(spec):
            if a.kind == "ptr":
                data = self.buffers.get(a.name, b"")
                parts += [struct.pack("<Q", len(data)), data]
        return b"".join(parts)


def _operand(rng: np.random.Generator, spec: ArchSpec, shape: tuple[int, int], kind: str) -> np.ndarray:
    """An operand matrix of ``kind``: random, min, max, ties (repeated magnitudes) or zero_groups."""
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    if kind == "random":
        a = rng.integers(lo, hi + 1, size=shape)
    elif kind == "min":
        a = np.full(shape, lo)
    elif kind == "max":
        a = np.full(shape, hi)
    elif kind == "ties":
        # Equal magnitudes of both signs, the most negative value (outranks hi) and zeros.
        a = rng.choice(np.array([lo, hi, -hi, 1, -1, 0, hi // 2, -(hi // 2)]), size=shape)
    elif kind == "zero_groups":
        # Whole zero M-groups along k, groups with fewer than N non-zeros, and a zero row.
        a = rng.integers(lo, hi + 1, size=shape)
        cols = np.arange(shape[1])
        a[:, (cols // spec.m) % 3 == 1] = 0
        sparse_grp = (cols // spec.m) % 3 == 2
        a[:, sparse_grp & (cols % spec.m != 0)] = 0
        a[0, :] = 0
    else:
        raise ValueError(f"unknown operand kind {kind!r}")
    return a.astype(np.int64)


def gemm_buffers(spec: ArchSpec, mode: str, a: np.ndarray, b: np.ndarray, n: int | None = None) -> dict[str, bytes]:
    """Inputs (ABI v2) of C = A.B in ``mode`` and the expected result from hostpy.golden (ABI v2).
    SPARSE keeps the top ``n`` of every M-group of A (hostpy.nm; default the spec's n)."""
    abi = Abi(spec)
    dt = abi.data_dtype
    out = {"b": abi.pack_grouped(np.asarray(b).T.astype(dt), spec.cols).tobytes()}
    if mode == "SPARSE":
        comp = nm.compress(np.asarray(a).astype(dt), spec.n if n is None else n, spec.m, axis=1)
        vals, idx = abi.pack_compressed(comp.values, comp.indices, spec.rows)
        out.update(a_val=vals.tobytes(), a_idx=idx.tobytes())
        c = golden.gemm_sparse(comp, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
    else:
        out["a_val"] = abi.pack_grouped(np.asarray(a).astype(dt), spec.rows).tobytes()
        c = golden.gemm_dense(a, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
    out["c"] = abi.pack_result(c).tobytes()
    return out


def prune_buffers(spec: ArchSpec, w: np.ndarray, n: int | None = None) -> dict[str, bytes]:
    """Input W (ABI v2 grouped) of PRUNE and the expected FF/BP copies from hostpy.golden.prune at
    ``n`` kept per group (default the spec's n)."""
    abi = Abi(spec)
    w = np.asarray(w).astype(abi.data_dtype)
    ff, bp = golden.prune(w, spec.n if n is None else n, spec.m, data_bits=spec.data_bits)
    fv, fi = abi.pack_compressed(ff.values, ff.indices, spec.rows)
    bv, bi = abi.pack_compressed(bp.values, bp.indices, spec.rows)
    return {"a_val": abi.pack_grouped(w, spec.rows).tobytes(), "ff_val": fv.tobytes(), "ff_idx": fi.tobytes(),
            "bp_val": bv.tobytes(), "bp_idx": bi.tobytes()}


def _gemm_case(spec: ArchSpec, rng, name: str, mode: str, rows: int, k: int, cols: int,
               a_kind: str, b_kind: str, n: int | None = None) -> Case:
    a = _operand(rng, spec, (rows, k), a_kind)
    b = _operand(rng, spec, (k, cols), b_kind)
    n = spec.n if n is None else n
    return Case(name, mode, rows, k, cols, n, buffers=gemm_buffers(spec, mode, a, b, n))


def _prune_case(spec: ArchSpec, rng, name: str, rows: int, k: int, w_kind: str, n: int | None = None) -> Case:
    w = _operand(rng, spec, (rows, k), w_kind)
    n = spec.n if n is None else n
    return Case(name, "PRUNE", rows, k, 0, n, buffers=prune_buffers(spec, w, n))


def runtime_n_values(spec: ArchSpec) -> list[int]:
    """The runtime n the csim regression covers: every n below M when M <= 8 (sat_2x8: 1..7), else
    the edges and the records-per-group steps around n_hw (1, n_hw - 1, n_hw + 1, 2 n_hw + 1, M/2, M - 1)."""
    if not spec.sparse:
        return []
    allowed = regmap(spec)["nm"]["runtime_n"]
    if spec.m <= 8:
        return list(allowed)
    pick = {1, spec.n - 1, spec.n + 1, 2 * spec.n + 1, spec.m // 2, spec.m - 1}
    return [n for n in allowed if n in pick]


def _runtime_n_cases(spec: ArchSpec, rng) -> list[Case]:
    """Every covered runtime n other than n_hw, back to back in one run (no reconfiguration between
    jobs, n changing from job to job): a SPARSE GEMM off the array grid with k not a multiple of M and
    a PRUNE per n; ties and all-zero groups at the first and last n. The n_hw cases are the rest."""
    r, c, m = spec.rows, spec.cols, spec.m
    ns = [n for n in runtime_n_values(spec) if n != spec.n]
    cases = []
    for j, n in enumerate(ns):
        cases += [
            _gemm_case(spec, rng, f"n{n}_sparse", "SPARSE", r + 1 + j % 3, (2 + j % 3) * m + 1 + j % (m - 1),
                       c + 1 + (j * 2) % c, "random", "random", n),
            _prune_case(spec, rng, f"n{n}_prune", m + 1 + j % 3, 2 * m + 3 + j, "random", n),
        ]
        if j in (0, len(ns) - 1):
            cases += [
                _gemm_case(spec, rng, f"n{n}_sparse_ties", "SPARSE", 3, 2 * m + 3, c, "ties", "ties", n),
                _gemm_case(spec, rng, f"n{n}_sparse_zero_groups", "SPARSE", r + 2, 4 * m + 3, 2, "zero_groups",
                           "random", n),
                _prune_case(spec, rng, f"n{n}_prune_ties", m + 2, 2 * m + 1, "ties", n),
                _prune_case(spec, rng, f"n{n}_prune_zero_groups", m + 1, 4 * m - 1, "zero_groups", n),
            ]
    return cases


def _refused_case(spec: ArchSpec, name: str, mode, rows: int, k: int, cols: int, n: int, bits: tuple[str, ...]) -> Case:
    """A job the kernel must refuse: status = the OR of ``bits``; every output byte stays untouched
    (its sections are empty, so the testbench checks the whole buffer as guard)."""
    status = 0
    for bit in bits:
        status |= 1 << STATUS_BITS[bit]
    ins = {}
    if isinstance(mode, str) and mode in ("SPARSE", "DENSE", "PRUNE"):
        # Input bytes of a small 4 x 4 x 4 job: a kernel that ignored the refusal would read past them
        # (the testbench's guards catch it) or write outputs it was not given.
        sizes = Abi(spec).call_bytes(mode, 4, 4, 4)
        ins = {name_: bytes(nbytes) for name_, nbytes in sizes.items() if name_ in ("a_val", "a_idx", "b")}
    return Case(name, mode, rows, k, cols, n, status, ins)


def csim_cases(spec: ArchSpec, seed: int = 1) -> list[Case]:
    """The csim regression for ``spec``: every mode it has, over shapes that are not multiples of
    the array or of M, B kept on chip and re-read (ceil(k/M) beyond the B buffer), several column
    tiles, min/max operands, all-zero groups, tied magnitudes, the largest reduction the spec
    allows (k = max_k at the most negative operands: the accumulator's in-spec bound), SPARSE and
    PRUNE at the runtime n of :func:`runtime_n_values` back to back, and jobs the kernel must refuse
    (each status bit it can see in a case file; bad_n at n = 0 and n = M). Small on purpose: ap_int
    C-simulation is slow."""
    rng = np.random.default_rng(seed)
    r, c, n, m = spec.rows, spec.cols, spec.n, spec.m
    k_reread = min(spec.max_k, spec.abuf_depth * m + m + 3)      # B tile beyond the on-chip buffer
    cases: list[Case] = []
    if spec.sparse:
        cases += [
            _gemm_case(spec, rng, "sparse_small", "SPARSE", r + 3, 3 * m + 3, c + 2, "random", "random"),
            _gemm_case(spec, rng, "sparse_reread", "SPARSE", r + 1, k_reread, 3, "random", "random"),
            _gemm_case(spec, rng, "sparse_col_tiles", "SPARSE", 2 * r + 1, 5 * m + 1, 3 * c + 1, "random", "random"),
            _gemm_case(spec, rng, "sparse_min", "SPARSE", r, 2 * m + 1, c, "min", "min"),
            _gemm_case(spec, rng, "sparse_max_min", "SPARSE", r - 1 or 1, 2 * m, c + 1, "max", "min"),
            _gemm_case(spec, rng, "sparse_zero_groups", "SPARSE", r + 1, 4 * m + 1, max(c - 1, 1),
                       "zero_groups", "random"),
            _gemm_case(spec, rng, "sparse_ties", "SPARSE", 2, 3 * m - 1, c, "ties", "ties"),
            _gemm_case(spec, rng, "sparse_1x1x1", "SPARSE", 1, 1, 1, "random", "random"),
            _gemm_case(spec, rng, "sparse_max_k", "SPARSE", 1, spec.max_k, 1, "min", "min"),
        ]
    cases += [
        _gemm_case(spec, rng, "dense_small", "DENSE", 2 * r + 1, 2 * n + 5, c + 1, "random", "random"),
        _gemm_case(spec, rng, "dense_reread", "DENSE", 2, k_reread, c + 1, "random", "random"),
        _gemm_case(spec, rng, "dense_col_tiles", "DENSE", r + 2, 3 * m + 2, 3 * c + 2, "random", "random"),
        _gemm_case(spec, rng, "dense_min", "DENSE", r, m + 3, 2, "min", "min"),
        _gemm_case(spec, rng, "dense_max_min", "DENSE", 3, n + 1, c, "max", "min"),
        _gemm_case(spec, rng, "dense_1x1x1", "DENSE", 1, 1, 1, "random", "random"),
        _gemm_case(spec, rng, "dense_max_k", "DENSE", 1, spec.max_k, 1, "min", "min"),
    ]
    if spec.sparse:
        cases += [
            _prune_case(spec, rng, "prune_random", 2 * m + 3, 3 * m + 1, "random"),
            _prune_case(spec, rng, "prune_ties", m + 1, 2 * m + 3, "ties"),
            _prune_case(spec, rng, "prune_zero_groups", m + 2, 4 * m, "zero_groups"),
            _prune_case(spec, rng, "prune_min", m - 1, m + 1, "min"),
            _prune_case(spec, rng, "prune_1x1", 1, 1, "random"),
            _prune_case(spec, rng, "prune_wide", 3 * r + 1, 5 * r + 3, "random"),
        ]
        cases += _runtime_n_cases(spec, rng)
    cases += [
        _refused_case(spec, "refuse_mode", 7, 4, 4, 4, n, ("bad_mode",)),
        _refused_case(spec, "refuse_rows", "DENSE", 0, 4, 4, n, ("bad_size",)),
        _refused_case(spec, "refuse_k", "DENSE", 4, spec.max_k + 1, 4, n, ("bad_size",)),
        _refused_case(spec, "refuse_cols", "DENSE", 4, 4, spec.max_dim + 1, n, ("bad_size",)),
    ]
    if spec.sparse:
        cases += [
            _refused_case(spec, "refuse_n", "SPARSE", 4, 4, 4, m, ("bad_n",)),            # n = M: DENSE's job
            _refused_case(spec, "refuse_n0", "SPARSE", 4, 4, 4, 0, ("bad_n",)),
            _refused_case(spec, "refuse_prune_n", "PRUNE", 4, 4, 0, m, ("bad_n",)),
            _refused_case(spec, "refuse_prune_n_and_size", "PRUNE", 0, 4, 0, 0, ("bad_size", "bad_n")),
        ]
    else:
        cases += [_refused_case(spec, "refuse_sparse", "SPARSE", 4, 4, 4, n, ("bad_mode",)),
                  _refused_case(spec, "refuse_prune", "PRUNE", 4, 4, 4, n, ("bad_mode",))]
    return cases


def write_vectors(spec: ArchSpec, vec_dir: str | Path, cases: list[Case]) -> Path:
    """Write the case files and ``cases.txt`` into ``vec_dir``, replacing it atomically."""
    vec_dir = Path(vec_dir).resolve()
    files = {f"{case.name}.bin": case.to_bytes(spec) for case in cases}
    files["cases.txt"] = "".join(f"{case.name}.bin\n" for case in cases).encode()
    write_tree(vec_dir, files)
    return vec_dir


def run_testbench(tb: Path, vec_dir: Path, *, echo=None) -> tuple[int, str]:
    """Run the testbench on ``vec_dir``; returns (exit code, its output). ``echo`` gets each line."""
    proc = subprocess.Popen([str(tb), str(vec_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            echo(line.rstrip("\n"))
    return proc.wait(), "".join(lines)


def run_csim(out_dir: str | Path, *, log=print) -> int:
    """The whole ``make csim`` flow for a generated project; returns the testbench's exit code."""
    out_dir = Path(out_dir).resolve()
    spec_file = out_dir / "spec.json"
    if not spec_file.is_file():
        raise CsimError(f"{spec_file} not found: generate the project first (make gen ARCH=...)")
    spec = load_spec(spec_file)
    t0 = time.monotonic()
    cases = csim_cases(spec)
    vec_dir = write_vectors(spec, _csim_dir(out_dir) / "vectors", cases)
    log(f"csim: {spec.name}: {len(cases)} cases from the golden model in {vec_dir} "
        f"({time.monotonic() - t0:.2f} s)")
    t1 = time.monotonic()
    tb = build_testbench(out_dir, log=log)
    log(f"csim: library + testbench ready ({time.monotonic() - t1:.2f} s)")
    t2 = time.monotonic()
    code, _ = run_testbench(tb, vec_dir, echo=log)
    t3 = time.monotonic()
    log(f"csim: testbench ran in {t3 - t2:.2f} s; wall time {t3 - t0:.2f} s; "
        f"{'all outputs bit-identical' if code == 0 else 'FAILED'}")
    return code


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gen.csim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="generated project directory (make gen OUT=...)")
    args = ap.parse_args(argv)
    try:
        return run_csim(args.out)
    except (CsimError, SpecError) as e:
        print(f"csim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
