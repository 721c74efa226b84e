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

from .atomic import write_tree
from .regmap import MODES, kernel_args
from .spec import ArchSpec, SpecError, load_spec

__all__ = ["CsimError", "Case", "AP_TYPES_DIR", "CXXFLAGS", "build_csim_library", "build_testbench",
           "csim_cases", "write_vectors", "run_testbench", "run_csim", "main"]

REPO = Path(__file__).resolve().parent.parent
AP_TYPES_DIR = REPO / ".deps" / "ap_types"
CXX = "g++"
CXXFLAGS = ("-std=c++14", "-O2", "-fPIC", "-Wno-unknown-pragmas")
LIB_NAME = "libsat_csim.so"
TB_NAME = "sat_tb"
TB_SOURCE = "sat_tb.cpp"
VECTOR_MAGIC = b"SATVEC1\0"
WRAP_K_LIMIT = 1 << 22      # largest k of the accumulator-wrap case (C-sim time and vector size)


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
    """One kernel call: scalars, input buffers and the golden model's expected outputs (bytes)."""

    name: str
    mode: str
    rows: int
    k: int
    cols: int
    buffers: dict[str, bytes] = field(default_factory=dict)     # arg name -> input or expected bytes

    def to_bytes(self, spec: ArchSpec) -> bytes:
        """The testbench's case file: header, then one section per pointer argument in order."""
        parts = [VECTOR_MAGIC, struct.pack("<4I", MODES[self.mode], self.rows, self.k, self.cols)]
        for a in kernel_args(spec):
            if a.kind == "ptr":
                data = self.buffers.get(a.name, b"")
                parts += [struct.pack("<Q", len(data)), data]
        return b"".join(parts)


def _dtypes(spec: ArchSpec) -> tuple[type, type]:
    return np.dtype(f"<i{spec.mem_data_bits // 8}"), np.dtype(f"<i{spec.mem_acc_bits // 8}")


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


def _gemm_case(spec: ArchSpec, rng, name: str, mode: str, rows: int, k: int, cols: int,
               a_kind: str, b_kind: str) -> Case:
    dt, acc_dt = _dtypes(spec)
    w = _operand(rng, spec, (rows, k), a_kind)
    b = _operand(rng, spec, (k, cols), b_kind)
    case = Case(name, mode, rows, k, cols)
    if mode == "SPARSE":
        comp = nm.compress(w.astype(dt), spec.n, spec.m, axis=1)
        c = golden.gemm_sparse(comp, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
        case.buffers["a_val"] = comp.values.astype(dt).tobytes()
        case.buffers["a_idx"] = comp.packed_indices()
    else:
        c = golden.gemm_dense(w, b, data_bits=spec.data_bits, acc_bits=spec.acc_bits)
        case.buffers["a_val"] = w.astype(dt).tobytes()
    case.buffers["b"] = b.astype(dt).tobytes()
    case.buffers["c"] = c.astype(acc_dt).tobytes()
    return case


def _prune_case(spec: ArchSpec, rng, name: str, rows: int, k: int, w_kind: str) -> Case:
    dt, _ = _dtypes(spec)
    w = _operand(rng, spec, (rows, k), w_kind)
    ff, bp = golden.prune(w, spec.n, spec.m, data_bits=spec.data_bits)
    case = Case(name, "PRUNE", rows, k, 0)
    case.buffers["a_val"] = w.astype(dt).tobytes()
    case.buffers["ff_val"] = ff.values.astype(dt).tobytes()
    case.buffers["ff_idx"] = ff.packed_indices()
    case.buffers["bp_val"] = bp.values.astype(dt).tobytes()
    case.buffers["bp_idx"] = bp.packed_indices()
    return case


def csim_cases(spec: ArchSpec, seed: int = 1) -> list[Case]:
    """The csim regression for ``spec``: every mode it has, over shapes that are not multiples of
    the array or of M, k just over one on-chip chunk (so k tiling runs), min/max operands,
    all-zero groups, tied magnitudes and an accumulator that wraps. Small on purpose: ap_int
    C-simulation is slow."""
    rng = np.random.default_rng(seed)
    r, c, n, m = spec.rows, spec.cols, spec.n, spec.m
    cases: list[Case] = []
    if spec.sparse:
        k_tile = min(spec.max_k, spec.k_chunk_sparse + m + 3)
        cases += [
            _gemm_case(spec, rng, "sparse_small", "SPARSE", r + 3, 3 * m + 3, c + 2, "random", "random"),
            _gemm_case(spec, rng, "sparse_ktile", "SPARSE", r + 1, k_tile, 3, "random", "random"),
            _gemm_case(spec, rng, "sparse_min", "SPARSE", r, 2 * m + 1, c, "min", "min"),
            _gemm_case(spec, rng, "sparse_max_min", "SPARSE", r - 1 or 1, 2 * m, c + 1, "max", "min"),
            _gemm_case(spec, rng, "sparse_zero_groups", "SPARSE", r + 1, 4 * m + 1, max(c - 1, 1),
                       "zero_groups", "random"),
            _gemm_case(spec, rng, "sparse_ties", "SPARSE", 2, 3 * m - 1, c, "ties", "ties"),
            _gemm_case(spec, rng, "sparse_1x1x1", "SPARSE", 1, 1, 1, "random", "random"),
        ]
    k_tile_dense = min(spec.max_k, spec.k_chunk_dense + n + 1)
    cases += [
        _gemm_case(spec, rng, "dense_small", "DENSE", 2 * r + 1, 2 * n + 5, c + 1, "random", "random"),
        _gemm_case(spec, rng, "dense_ktile", "DENSE", 2, k_tile_dense, c + 1, "random", "random"),
        _gemm_case(spec, rng, "dense_min", "DENSE", r, m + 3, 2, "min", "min"),
        _gemm_case(spec, rng, "dense_max_min", "DENSE", 3, n + 1, c, "max", "min"),
        _gemm_case(spec, rng, "dense_1x1x1", "DENSE", 1, 1, 1, "random", "random"),
    ]
    # Beyond max_k (the testbench calls the kernel directly, past the C API's limits): just enough
    # (-2^(d-1))^2 products to overflow acc_bits, so the accumulator must wrap exactly as
    # hostpy.golden.wrap does. A sparse row sums only N products per group of M. Skipped when that
    # k would make the C-simulation slow.
    products = (1 << (spec.acc_bits - 2 * spec.data_bits + 1)) + 1
    k_wrap_sparse = (-(-products // n) + 1) * m
    k_wrap_dense = products + m + 1
    if spec.sparse and k_wrap_sparse <= WRAP_K_LIMIT:
        cases.append(_gemm_case(spec, rng, "sparse_wrap", "SPARSE", 1, k_wrap_sparse, 1, "min", "min"))
    if k_wrap_dense <= WRAP_K_LIMIT:
        cases.append(_gemm_case(spec, rng, "dense_wrap", "DENSE", 1, k_wrap_dense, 1, "min", "min"))
    if spec.sparse:
        cases += [
            _prune_case(spec, rng, "prune_random", 2 * m + 3, 3 * m + 1, "random"),
            _prune_case(spec, rng, "prune_ties", m + 1, 2 * m + 3, "ties"),
            _prune_case(spec, rng, "prune_zero_groups", m + 2, 4 * m, "zero_groups"),
            _prune_case(spec, rng, "prune_min", m - 1, m + 1, "min"),
            _prune_case(spec, rng, "prune_1x1", 1, 1, "random"),
        ]
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
