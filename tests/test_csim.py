"""C-simulation of the generated HLS kernel (g++): the `make csim` flow for every preset, the shared
library's C API against hostpy.golden, its argument checks, and a testbench that really fails.

Builds are cached under build/test_csim/ (by a hash of sources and flags) and shared by pytest-xdist
workers through a file lock per preset, so each preset compiles once and a re-run only re-generates
vectors and runs the testbenches.
"""
from __future__ import annotations

import ctypes
import fcntl
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from gen import csim
from gen.regmap import MODES, REGMAP_VERSION, kernel_args
from gen.render import generate
from gen.spec import PRESETS, ArchSpec, preset
from hostpy import golden, nm

REPO = Path(__file__).resolve().parent.parent
BUILD_ROOT = REPO / "build" / "test_csim"

pytestmark = pytest.mark.skipif(not (csim.AP_TYPES_DIR / "ap_int.h").is_file() or shutil.which("g++") is None,
                                reason="C-simulation needs g++ and .deps/ap_types (make setup)")


class Built:
    """A generated project with its C-simulation library and testbench compiled."""

    def __init__(self, name: str):
        self.spec: ArchSpec = preset(name)
        self.out = BUILD_ROOT / name
        BUILD_ROOT.mkdir(parents=True, exist_ok=True)
        with open(BUILD_ROOT / f".{name}.lock", "w") as lock:     # one builder per preset at a time
            fcntl.flock(lock, fcntl.LOCK_EX)
            generate(self.spec, self.out, log=lambda m: None)
            self.tb = csim.build_testbench(self.out)
            self.lib_path = csim.build_csim_library(self.out)
        self._lib = None

    @property
    def lib(self) -> ctypes.CDLL:
        if self._lib is None:
            lib = ctypes.CDLL(str(self.lib_path))
            lib.satgen_run.restype = ctypes.c_int
            lib.satgen_run.argtypes = [ctypes.c_uint32] * 4 + [ctypes.c_void_p] * 8
            lib.satgen_arch.restype = ctypes.c_char_p
            lib.satgen_regmap_version.restype = ctypes.c_int
            self._lib = lib
        return self._lib


_BUILT: dict[str, Built] = {}
_CASES: dict[str, list[csim.Case]] = {}


def cases_of(spec: ArchSpec) -> list[csim.Case]:
    """csim.csim_cases, computed once per preset (the wrap cases take ~1 s of golden model)."""
    if spec.name not in _CASES:
        _CASES[spec.name] = csim.csim_cases(spec)
    return _CASES[spec.name]


def built(name: str) -> Built:
    if name not in _BUILT:
        _BUILT[name] = Built(name)
    return _BUILT[name]


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def _dtypes(spec: ArchSpec):
    return np.dtype(f"int{spec.mem_data_bits}"), np.dtype(f"int{spec.mem_acc_bits}")


def run_lib(b: Built, mode: str, rows: int, k: int, cols: int, a_val=None, a_idx=None, bmat=None, c=None,
            ff_val=None, ff_idx=None, bp_val=None, bp_idx=None) -> int:
    return b.lib.satgen_run(MODES.get(mode, mode) if isinstance(mode, str) else mode, rows, k, cols,
                            _ptr(a_val), _ptr(a_idx), _ptr(bmat), _ptr(c),
                            _ptr(ff_val), _ptr(ff_idx), _ptr(bp_val), _ptr(bp_idx))


def assert_prune_matches_golden(b: Built, w: np.ndarray) -> None:
    """PRUNE through the library: both compressed copies equal hostpy.golden.prune bit for bit."""
    spec = b.spec
    rows, k = w.shape
    ff, bp = golden.prune(w, spec.n, spec.m, data_bits=spec.data_bits)
    out = {"ff_val": np.empty_like(ff.values), "bp_val": np.empty_like(bp.values),
           "ff_idx": np.empty(len(ff.packed_indices()), np.uint8),
           "bp_idx": np.empty(len(bp.packed_indices()), np.uint8)}
    assert run_lib(b, "PRUNE", rows, k, 0, a_val=w, **out) == 0
    np.testing.assert_array_equal(out["ff_val"], ff.values)
    np.testing.assert_array_equal(out["bp_val"], bp.values)
    assert out["ff_idx"].tobytes() == ff.packed_indices(), (rows, k)
    assert out["bp_idx"].tobytes() == bp.packed_indices(), (rows, k)


# ---- the make csim flow ------------------------------------------------------------------------
# The VCU1525-sized presets (32x64 PEs) run every case in `make csim`; in CI they get the library's
# one-GEMM-per-mode checks below (test_library_*), which is where their time goes.
@pytest.mark.parametrize("name", [n for n in PRESETS if not n.endswith("_vu9p")])
def test_csim_testbench_is_bit_exact_for_every_case(name, tmp_path):
    b = built(name)
    cases = cases_of(b.spec)
    modes = {c.mode for c in cases}
    assert modes == ({"SPARSE", "DENSE", "PRUNE"} if b.spec.sparse else {"DENSE"})
    if b.spec.sparse:   # k tiling really runs: some case has k beyond one on-chip chunk
        assert any(c.mode == "SPARSE" and c.k > b.spec.k_chunk_sparse for c in cases)
    assert any(c.mode == "DENSE" and c.k > b.spec.k_chunk_dense for c in cases)
    assert {c.name for c in cases} >= ({"sparse_wrap", "dense_wrap"} if b.spec.sparse else {"dense_wrap"})
    vec = csim.write_vectors(b.spec, tmp_path / "vectors", cases)
    code, out = csim.run_testbench(b.tb, vec)
    assert code == 0, out
    assert f"csim: {len(cases)} passed, 0 failed ({name})" in out
    assert sorted(re.findall(r"^PASS (\S+)\.bin$", out, re.M)) == sorted(c.name for c in cases)


def test_make_csim_entry_point_prints_summary_and_wall_time(capsys):
    b = built("sat_2x4")
    assert csim.main(["--out", str(b.out)]) == 0
    out = capsys.readouterr().out
    assert f"csim: {len(cases_of(b.spec))} passed, 0 failed (sat_2x4)" in out
    assert re.search(r"wall time \d+\.\d\d s; all outputs bit-identical", out)


def test_csim_entry_point_on_a_missing_project_says_what_to_do(tmp_path, capsys):
    assert csim.main(["--out", str(tmp_path / "nothing")]) == 2
    assert "make gen" in capsys.readouterr().err


# ---- the testbench really fails ------------------------------------------------------------------
def _section_offsets(spec: ArchSpec, data: bytes) -> dict[str, tuple[int, int]]:
    """(offset, length) of each pointer section in a case file."""
    pos, out = 8 + 16, {}
    for a in kernel_args(spec):
        if a.kind == "ptr":
            (n,) = struct.unpack_from("<Q", data, pos)
            out[a.name] = (pos + 8, n)
            pos += 8 + n
    assert pos == len(data)
    return out


@pytest.mark.parametrize("case_name,section", [("sparse_ktile", "c"), ("dense_small", "c"),
                                               ("prune_ties", "bp_idx"), ("prune_random", "ff_val")])
def test_testbench_reports_a_corrupted_expected_value(tmp_path, case_name, section):
    b = built("sat_2x8")
    cases = cases_of(b.spec)
    vec = csim.write_vectors(b.spec, tmp_path / "vectors", cases)
    path = vec / f"{case_name}.bin"
    data = bytearray(path.read_bytes())
    off, n = _section_offsets(b.spec, bytes(data))[section]
    assert n > 0
    data[off + n // 2] ^= 0x01                  # one bit of one expected element
    path.write_bytes(bytes(data))
    code, out = csim.run_testbench(b.tb, vec)
    assert code != 0
    assert re.search(rf"^FAIL {case_name}\.bin: {section}\[\d+\]: got -?\d+, expected -?\d+", out, re.M), out
    assert f"csim: {len(cases) - 1} passed, 1 failed" in out


def test_testbench_catches_a_kernel_with_the_wrong_tie_rule(tmp_path):
    """Mutation check: flipping the tie-break in the top-N unit must fail the tie and min cases."""
    b = built("sat_2x8")
    out = tmp_path / "mutant"
    shutil.copytree(b.out, out, ignore=shutil.ignore_patterns("work"))
    pe = out / "hls" / "sat_pe.h"
    src = pe.read_text()
    assert "(mag[f] == mag[e] && f < e)" in src
    pe.write_text(src.replace("(mag[f] == mag[e] && f < e)", "(mag[f] == mag[e] && f > e)"))
    tb = csim.build_testbench(out)
    vec = csim.write_vectors(b.spec, out / "work" / "csim" / "vectors", cases_of(b.spec))
    code, text = csim.run_testbench(tb, vec)
    assert code != 0
    failed = set(re.findall(r"^FAIL (\S+)\.bin", text, re.M))
    assert {"prune_ties", "prune_min"} <= failed
    assert not any(n.startswith(("sparse", "dense")) for n in failed)


# ---- the shared library (contract with hostpy's csim backend) --------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
def test_library_identity(name):
    b = built(name)
    assert b.lib.satgen_arch().decode() == name
    assert b.lib.satgen_regmap_version() == REGMAP_VERSION


@pytest.mark.parametrize("name", list(PRESETS))
def test_library_gemms_match_golden(name):
    b = built(name)
    spec = b.spec
    dt, acc_dt = _dtypes(spec)
    rng = np.random.default_rng(7)
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    shapes = [(spec.rows + 2, 2 * spec.m + 5, spec.cols + 3), (3, spec.m - 1, 2 * spec.cols + 1)]
    for rows, k, cols in shapes:
        w = rng.integers(lo, hi + 1, size=(rows, k)).astype(dt)
        x = rng.integers(lo, hi + 1, size=(k, cols)).astype(dt)
        c = np.full((rows, cols), 0x5A5A, dtype=acc_dt)
        assert run_lib(b, "DENSE", rows, k, cols, a_val=w, bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_dense(w, x, data_bits=spec.data_bits, acc_bits=spec.acc_bits))
        if not spec.sparse:
            continue
        comp = nm.compress(w, spec.n, spec.m, axis=1)
        idx = np.frombuffer(comp.packed_indices(), dtype=np.uint8).copy()
        vals = np.ascontiguousarray(comp.values.astype(dt))
        c = np.full((rows, cols), 0x5A5A, dtype=acc_dt)
        assert run_lib(b, "SPARSE", rows, k, cols, a_val=vals, a_idx=idx, bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_sparse(comp, x, data_bits=spec.data_bits,
                                                            acc_bits=spec.acc_bits))


@pytest.mark.parametrize("name", [n for n, s in PRESETS.items() if s.sparse])
def test_library_prune_matches_golden(name):
    b = built(name)
    spec = b.spec
    dt, _ = _dtypes(spec)
    rng = np.random.default_rng(11)
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    for rows, k in [(spec.m + 3, 2 * spec.m - 1), (2 * spec.m, 5)]:
        w = rng.choice(np.array([lo, hi, -hi, 0, 1, -1, 7, -7]), size=(rows, k)).astype(dt)
        assert_prune_matches_golden(b, w)


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x8_kv260", "dense"])
def test_library_rejects_out_of_spec_calls_without_running_the_kernel(name):
    b = built(name)
    spec = b.spec
    dt, acc_dt = _dtypes(spec)
    a = np.ones((4, 4), dtype=dt)
    x = np.ones((4, 4), dtype=dt)
    c = np.full((4, 4), 77, dtype=acc_dt)
    ok = dict(a_val=a, bmat=x, c=c)
    assert run_lib(b, "DENSE", 4, 4, 4, **ok) == 0 and (c == 4).all()
    c[:] = 77
    bad_calls = [
        ("DENSE", 0, 4, 4, ok), ("DENSE", spec.max_dim + 1, 4, 4, ok),
        ("DENSE", 4, 0, 4, ok), ("DENSE", 4, spec.max_k + 1, 4, ok),
        ("DENSE", 4, 4, 0, ok), ("DENSE", 4, 4, spec.max_dim + 1, ok),
        (99, 4, 4, 4, ok), ("DENSE", 4, 4, 4, dict(a_val=a, bmat=None, c=c)),
    ]
    if spec.sparse:
        bad_calls.append(("SPARSE", 4, 4, 4, ok))            # no a_idx
        bad_calls.append(("PRUNE", 4, 4, 4, ok))             # no ff/bp outputs
    else:   # the dense baseline offers DENSE only
        bad_calls.append((MODES["SPARSE"], 4, 4, 4, ok))
        bad_calls.append((MODES["PRUNE"], 4, 4, 4, ok))
    codes = []
    for mode, rows, k, cols, ptrs in bad_calls:
        code = run_lib(b, mode, rows, k, cols, **ptrs)
        assert code < 0, (mode, rows, k, cols)
        assert (c == 77).all(), "kernel ran despite the error"
        codes.append(code)
    assert len(set(codes)) >= 4     # mode, rows, k, cols and NULL errors are told apart


# ---- building ----------------------------------------------------------------------------------
def test_library_build_is_cached_and_atomic():
    b = built("sat_2x8")
    before = b.lib_path.stat().st_mtime_ns
    again = csim.build_csim_library(b.out)
    assert again == b.lib_path and again.stat().st_mtime_ns == before
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".")]    # no temp files left


def test_build_errors_say_run_make_setup(tmp_path, monkeypatch):
    out = tmp_path / "p"
    generate(preset("sat_2x4"), out, log=lambda m: None)
    monkeypatch.setattr(csim, "AP_TYPES_DIR", tmp_path / "no_headers")
    with pytest.raises(csim.CsimError, match="ap_types headers not found.*run make setup"):
        csim.build_csim_library(out)
    monkeypatch.undo()
    monkeypatch.setattr(csim, "CXX", "no-such-g++")
    with pytest.raises(csim.CsimError, match="no-such-g\\+\\+ not found.*run make setup"):
        csim.build_csim_library(out)
    assert not (out / "work" / "csim" / "libsat_csim.so").exists()
    with pytest.raises(csim.CsimError, match="generate the project first"):
        csim.build_csim_library(tmp_path / "not_generated")


def test_compile_error_is_reported_and_leaves_no_library(tmp_path):
    out = tmp_path / "p"
    generate(preset("sat_2x4"), out, log=lambda m: None)
    (out / "hls" / "sat_config.h").write_text("this is not C++;\n")     # fails fast, before ap_int.h
    with pytest.raises(csim.CsimError, match="g\\+\\+ failed building libsat_csim.so"):
        csim.build_csim_library(out)
    assert not (out / "work" / "csim" / "libsat_csim.so").exists()
    assert not [p for p in (out / "work" / "csim").iterdir() if p.name.startswith(".")]


# ---- random shapes (property) --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sat_2x8", "sat_1x16"])
def test_library_matches_golden_on_random_shapes(name):
    b = built(name)
    spec = b.spec
    dt, acc_dt = _dtypes(spec)
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    # k reaches past two sparse chunks and many dense chunks; rows/cols straddle tile edges.
    k_max = min(spec.max_k, 2 * spec.k_chunk_sparse + 3 * spec.m)

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=st.integers(1, 2 * spec.rows + 1), cols=st.integers(1, 2 * spec.cols + 1),
           k=st.one_of(st.integers(1, 4 * spec.m), st.integers(1, k_max)),
           seed=st.integers(0, 2**32 - 1), extreme=st.booleans())
    def check(rows, cols, k, seed, extreme):
        rng = np.random.default_rng(seed)
        pool = np.array([lo, hi, -hi, 0, 1, -1]) if extreme else np.arange(lo, hi + 1)
        w = rng.choice(pool, size=(rows, k)).astype(dt)
        x = rng.choice(pool, size=(k, cols)).astype(dt)
        comp = nm.compress(w, spec.n, spec.m, axis=1)
        idx = np.frombuffer(comp.packed_indices(), dtype=np.uint8).copy()
        c = np.empty((rows, cols), dtype=acc_dt)
        assert run_lib(b, "SPARSE", rows, k, cols, a_val=np.ascontiguousarray(comp.values), a_idx=idx,
                       bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_sparse(comp, x, data_bits=spec.data_bits,
                                                            acc_bits=spec.acc_bits))
        assert run_lib(b, "DENSE", rows, k, cols, a_val=w, bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_dense(w, x, data_bits=spec.data_bits,
                                                           acc_bits=spec.acc_bits))
        assert_prune_matches_golden(b, w)

    check()


# ---- the fetch schedule: ping-pong banks, B stationary, and gen/perf.py's count of its loops ------
def _random_gemm(spec: ArchSpec, rng, rows: int, k: int, cols: int):
    dt, _ = _dtypes(spec)
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    return (rng.integers(lo, hi + 1, size=(rows, k)).astype(dt),
            rng.integers(lo, hi + 1, size=(k, cols)).astype(dt))


def _schedule_shapes(spec: ArchSpec) -> list[tuple[int, int, int]]:
    r, c, m = spec.rows, spec.cols, spec.m
    return [
        (5 * r + 1, 1, 3 * c - 1),                  # B stationary, more row tiles than B rows' slices
        (3 * r, 2 * m + 3, 4 * c + 1),              # B stationary, banks alternate over 5 column tiles
        (r + 3, spec.k_chunk_sparse + 1, 2 * c + 1),  # two k chunks: partial sums kept between them
        (m * r + 2 * r - 1, spec.k_chunk_sparse + m, c),  # k chunks over a full and a partial panel
    ]


@pytest.mark.parametrize("name", ["sat_2x8", "sat_1x16"])
def test_ping_pong_schedule_matches_golden(name):
    b = built(name)
    spec = b.spec
    _, acc_dt = _dtypes(spec)
    rng = np.random.default_rng(23)
    for rows, k, cols in _schedule_shapes(spec):
        w, x = _random_gemm(spec, rng, rows, k, cols)
        c = np.full((rows, cols), 0x5A5A, dtype=acc_dt)
        assert run_lib(b, "DENSE", rows, k, cols, a_val=w, bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_dense(w, x, data_bits=spec.data_bits, acc_bits=spec.acc_bits))
        comp = nm.compress(w, spec.n, spec.m, axis=1)
        idx = np.frombuffer(comp.packed_indices(), dtype=np.uint8).copy()
        c = np.full((rows, cols), 0x5A5A, dtype=acc_dt)
        assert run_lib(b, "SPARSE", rows, k, cols, a_val=np.ascontiguousarray(comp.values), a_idx=idx,
                       bmat=x, c=c) == 0
        np.testing.assert_array_equal(c, golden.gemm_sparse(comp, x, data_bits=spec.data_bits,
                                                            acc_bits=spec.acc_bits))


TRIP_CAPACITY = 4096


def test_perf_hls_schedule_counts_the_kernel_loops(tmp_path):
    """gen/perf.py's HLS schedule against the trip counts the kernel's loops really run (C-sim
    compiled with -DSATGEN_TRIP_COUNT): per units_loop iteration the longest of load_w, load_b and
    emit, or the drain (R) of a tile finished in the iteration before, plus the last drain."""
    from gen import perf
    b = built("sat_2x8")
    spec = b.spec
    cpps, _ = csim._hls_sources(b.out)
    lib_path = tmp_path / "libsat_trips.so"
    subprocess.run([shutil.which("g++"), *csim.CXXFLAGS, "-shared", f"-DSATGEN_TRIP_COUNT={TRIP_CAPACITY}",
                    f"-I{csim.AP_TYPES_DIR}", *map(str, cpps), "-o", str(lib_path)], check=True)
    lib = ctypes.CDLL(str(lib_path))
    lib.satgen_run.restype = ctypes.c_int
    lib.satgen_run.argtypes = [ctypes.c_uint32] * 4 + [ctypes.c_void_p] * 8
    trips = (ctypes.c_uint32 * 4 * TRIP_CAPACITY).in_dll(lib, "satgen_trips")
    iterations = ctypes.c_uint32.in_dll(lib, "satgen_trip_iterations")
    loop_trips = (ctypes.c_uint64 * 6).in_dll(lib, "satgen_loop_trips")
    _, acc_dt = _dtypes(spec)
    rng = np.random.default_rng(5)
    shapes = _schedule_shapes(spec) + [(spec.rows, 2 * spec.k_chunk_dense + 5, spec.cols), (1, 1, 1)]
    for rows, k, cols in shapes:
        w, x = _random_gemm(spec, rng, rows, k, cols)
        comp = nm.compress(w, spec.n, spec.m, axis=1)
        idx = np.frombuffer(comp.packed_indices(), dtype=np.uint8).copy()
        operands = {"DENSE": (w, None), "SPARSE": (np.ascontiguousarray(comp.values), idx)}
        for mode, (a_val, a_idx) in operands.items():
            iterations.value = 0
            c = np.empty((rows, cols), dtype=acc_dt)
            assert lib.satgen_run(MODES[mode], rows, k, cols, _ptr(a_val), _ptr(a_idx), _ptr(x), _ptr(c),
                                  None, None, None, None) == 0
            n = iterations.value
            assert 2 <= n <= TRIP_CAPACITY
            measured = spec.rows                                   # the last tile's drain
            for u in range(n):
                load_w, load_b, emit, _ = trips[u]
                drain = spec.rows if u >= 1 and trips[u - 1][3] else 0
                measured += max(load_w, load_b, emit, drain)
            assert sum(trips[u][3] for u in range(n)) == -(-rows // spec.rows) * -(-cols // spec.cols)
            emitted = sum(trips[u][2] for u in range(n))
            model = perf.gemm_cost(spec, mode, rows, k, cols, perf.HLS_KERNEL_SCHEDULE)
            assert (model.cycles, model.beats) == (measured, emitted), (mode, rows, k, cols)
    # PRUNE: prune_pass (FF, and BP in place when W is too tall) one group per iteration, M reads
    # per group when in place; the BP stage: one iteration per staged row and per group.
    dt, _ = _dtypes(spec)
    for rows, k in _prune_shapes(spec):
        w = np.ones((rows, k), dtype=dt)
        ff, bp = golden.prune(w, spec.n, spec.m, data_bits=spec.data_bits)
        for i in range(6):
            loop_trips[i] = 0
        assert lib.satgen_run(MODES["PRUNE"], rows, k, 0, _ptr(w), None, None, None,
                              _ptr(np.empty_like(ff.values)), _ptr(np.empty(len(ff.packed_indices()), np.uint8)),
                              _ptr(np.empty_like(bp.values)), _ptr(np.empty(len(bp.packed_indices()), np.uint8))) == 0
        pass_groups, stage_rows, stage_groups = loop_trips[3], loop_trips[4], loop_trips[5]
        ff_groups = rows * -(-k // spec.m)
        in_place = pass_groups - ff_groups                      # BP groups read in place
        assert (stage_groups == 0) == (in_place > 0) == (rows > _bp_stage(spec)[0])
        measured = ff_groups + in_place * spec.m + stage_rows + stage_groups
        assert perf.hls_prune_cost(spec, rows, k).cycles == measured, (rows, k)


def _bp_stage(spec: ArchSpec) -> tuple[int, int]:
    """(values the BP stage holds, values per AXI beat), as hls/sat_kernel.cpp derives them."""
    return spec.cols * spec.abuf_depth * spec.m, spec.axi_bits // spec.mem_data_bits


def _prune_shapes(spec: ArchSpec) -> list[tuple[int, int]]:
    stage, beat = _bp_stage(spec)
    return [
        (spec.m + 3, 2 * beat + 5),                 # blocks of a whole beat of columns, one partial
        (stage // beat + spec.m + 1, beat + 7),     # too tall for a beat's worth: narrower blocks
        (stage + 1, 3),                             # too tall for the stage: BP read in place
    ]


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x8_kv260"])
def test_prune_bp_staging_and_fallback_match_golden(name):
    b = built(name)
    spec = b.spec
    dt, _ = _dtypes(spec)
    rng = np.random.default_rng(29)
    lo, hi = -(1 << (spec.data_bits - 1)), (1 << (spec.data_bits - 1)) - 1
    for rows, k in _prune_shapes(spec):
        w = rng.choice(np.array([lo, hi, -hi, 0, 1, -1, 7, -7, 3]), size=(rows, k)).astype(dt)
        assert_prune_matches_golden(b, w)
