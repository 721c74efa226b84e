"""hostpy's rtl backend: the RTL kernel (Verilator library, gen/rtlsim.py) driven like a board.

Every result is compared bit for bit with the numpy backend (hostpy.golden); the memory model runs
with latency, narrower bandwidth and random stalls. Also: the cycle-limit timeout (and recovery),
refused jobs (bad mode / size / n, misaligned pointers) reported through the status register,
a library of another arch refused, simulated cycles reported. One Verilator build of sat_2x8
(cached in build/rtlsim-cache). The harness alone is tested in tests/test_rtlsim_harness.py.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import hostpy
from gen.memmodel import MemoryModel
from hostpy.device import KernelCall
from hostpy.errors import ArchMismatchError, BackendUnavailableError, DeviceTimeoutError, KernelError

from test_hostpy_helpers import arch_dir

STALLY = MemoryModel(read_latency=40, write_latency=20, words_per_cycle=0.5, banking="shared", stall_rate=0.2, seed=7)


def _open_rtl(path, **kw):
    try:
        return hostpy.open(path, backend="rtl", **kw)
    except BackendUnavailableError as e:
        if "no module sat_kernel" in str(e):
            pytest.skip(f"the RTL kernel is not in this tree yet: {e}")
        raise


@pytest.fixture(scope="module")
def arch(tmp_path_factory):
    return arch_dir(tmp_path_factory, "sat_2x8")


@pytest.fixture(scope="module")
def rtl(arch):
    acc = _open_rtl(arch)
    yield acc
    acc.close()


def _ops(rng, shape):
    a = rng.integers(-128, 128, shape).astype(np.int8)
    a[0, :] = -128
    return a


def _prune_or_xfail(rtl, w):
    """PRUNE on the kernel; xfail while the RTL kernel refuses the mode (issue 9 lands SPARSE/DENSE first)."""
    try:
        return rtl.prune(w)
    except KernelError as e:
        if "bad_mode" in str(e):
            pytest.xfail(f"the RTL kernel refuses PRUNE (status bad_mode: not implemented yet): {e}")
        raise


MEMORIES = [MemoryModel(), STALLY]
MEMORY_IDS = ["default_memory", "stalls_shared_half_bw"]


@pytest.mark.parametrize("memory", MEMORIES, ids=MEMORY_IDS)
def test_gemm_passes_bit_exact_vs_numpy(rtl, arch, memory):
    rtl.device.model.configure(memory)
    ref = hostpy.open(arch, backend="numpy")
    rng = np.random.default_rng(1)
    for cout, cin, batch in [(8, 16, 8), (13, 37, 5), (24, 70, 19)]:
        w, x, dy = _ops(rng, (cout, cin)), _ops(rng, (cin, batch)), _ops(rng, (cout, batch))
        w[1 % cout, : min(cin, 8)] = 0
        pw = ref.prune(w)                           # the golden model's copies; PRUNE on the kernel below
        assert np.array_equal(rtl.ff(pw, x), ref.ff(pw, x))
        assert np.array_equal(rtl.bp(pw, dy), ref.bp(pw, dy))
        assert np.array_equal(rtl.wu(dy, x), ref.wu(dy, x))
        assert rtl.device.last_cycles > 0
    rtl.device.model.configure(MemoryModel())


@pytest.mark.parametrize("memory", MEMORIES, ids=MEMORY_IDS)
def test_prune_bit_exact_vs_numpy(rtl, arch, memory):
    rtl.device.model.configure(memory)
    ref = hostpy.open(arch, backend="numpy")
    rng = np.random.default_rng(6)
    try:
        for cout, cin in [(8, 16), (13, 37), (24, 70)]:
            w = _ops(rng, (cout, cin))
            w[1 % cout, : min(cin, 8)] = 0
            w[2 % cout, : min(cin, 8)] = [127, -127, -128, 127, 1, -1, 0, 64][: min(cin, 8)]     # ties
            pw, pw_ref = _prune_or_xfail(rtl, w), ref.prune(w)
            for got, exp in ((pw.ff, pw_ref.ff), (pw.bp, pw_ref.bp)):
                assert np.array_equal(got.values, exp.values) and np.array_equal(got.indices, exp.indices)
    finally:
        rtl.device.model.configure(MemoryModel())


@pytest.mark.parametrize("memory", MEMORIES, ids=MEMORY_IDS)
def test_runtime_n_bit_exact_vs_numpy(rtl, arch, memory):
    """Runtime N: PRUNE, FF and BP at every n of nm.runtime_n (1..M-1), back to back on one kernel without
    reconfiguration, bit-exact vs the numpy backend; a job at n > n_hw takes ceil(n / n_hw) times the array
    steps (its cycles grow with n)."""
    rtl.device.model.configure(memory)
    ref = hostpy.open(arch, backend="numpy")
    s = rtl.spec
    assert rtl.runtime_n == tuple(range(1, s.m))
    rng = np.random.default_rng(12)
    cout, cin, batch = 19, 45, 11                    # off the 8 x 8 grid, k not a multiple of M
    w, x, dy = _ops(rng, (cout, cin)), _ops(rng, (cin, batch)), _ops(rng, (cout, batch))
    w[1, :8] = 0                                     # an all-zero group
    w[2, :8] = [127, -127, -128, 127, 1, -1, 0, 64]  # ties
    cycles = {}
    try:
        for n in rng.permutation(rtl.runtime_n):
            n = int(n)
            pw, pw_ref = rtl.prune(w, n), ref.prune(w, n)
            for got, exp in ((pw.ff, pw_ref.ff), (pw.bp, pw_ref.bp)):
                assert got.n == n and np.array_equal(got.values, exp.values) and np.array_equal(got.indices, exp.indices)
            assert np.array_equal(rtl.ff(pw, x), ref.ff(pw, x)), n
            cycles[n] = rtl.device.last_cycles
            assert np.array_equal(rtl.bp(pw, dy), ref.bp(pw, dy)), n
    finally:
        rtl.device.model.configure(MemoryModel())
    if memory == MemoryModel():                      # full bandwidth: the FF call's cycles follow spg = ceil(n / n_hw)
        spg = {n: -(-n // s.n) for n in cycles}
        for a in cycles:
            for b in cycles:
                if spg[a] < spg[b]:
                    assert cycles[a] < cycles[b], cycles


def test_tiled_problem_matches_numpy(arch):
    rtl = _open_rtl(arch, tile=(16, 32, 16))
    ref = hostpy.open(arch, backend="numpy")
    rng = np.random.default_rng(2)
    a, b = _ops(rng, (40, 100)), _ops(rng, (100, 33))
    calls = rtl.calls
    assert np.array_equal(rtl.gemm(a, b), ref.gemm(a, b))
    assert rtl.calls - calls == 3 * 4 * 3
    rtl.close()


def test_cycle_limit_raises_timeout_and_the_device_recovers(arch):
    rtl = _open_rtl(arch, max_cycles=60)
    rng = np.random.default_rng(3)
    a, b = _ops(rng, (16, 256)), _ops(rng, (256, 16))
    with pytest.raises(DeviceTimeoutError, match="no ap_done within 60 simulated cycles"):
        rtl.gemm(a, b)
    rtl.device.max_cycles = None
    assert np.array_equal(rtl.gemm(a, b), hostpy.open(arch, backend="numpy").gemm(a, b))
    rtl.close()


def _refused(dev, call: KernelCall, **override) -> tuple[str, dict]:
    """Run ``call`` with some argument registers overridden; (the KernelError text, the output buffers' bytes)."""
    values, outs = dev.prepare(call)
    values.update({k: v(values[k]) if callable(v) else v for k, v in override.items()})
    for buf, count in outs.values():
        dev.model.copy_to(buf.addr, np.full(count, 0xA5, np.uint8))
    dev.launch(values)
    with pytest.raises(KernelError) as ei:
        dev.wait(call, 10**6)
    return str(ei.value), {name: dev.model.copy_from(buf.addr, count) for name, (buf, count) in outs.items()}


@pytest.mark.parametrize("override,reason", [({"mode": 7}, "bad_mode"), ({"rows": 0}, "bad_size"),
                                             ({"k": 10**6}, "bad_size"), ({"n": 0}, "bad_n"), ({"n": 8}, "bad_n"),
                                             ({"n": 2**32 - 1}, "bad_n"), ({"b": lambda addr: addr + 8}, "misaligned")],
                         ids=["mode", "rows0", "k_huge", "n0", "nM", "n_huge", "misaligned_b"])
def test_bad_registers_are_refused_by_status_and_touch_no_memory(rtl, override, reason):
    dev = rtl.device
    s = rtl.spec
    rng = np.random.default_rng(4)
    a, b = _ops(rng, (8, 32)), _ops(rng, (32, 8))
    from hostpy.nm import compress
    comp = compress(a, s.n, s.m, axis=1)
    av, ai = rtl.abi.pack_compressed(comp.values, comp.indices, s.rows)
    call = KernelCall("SPARSE", 8, 32, 8, av, ai, rtl.abi.pack_grouped(b.T, s.cols))
    text, outs = _refused(dev, call, **override)
    assert reason in text
    assert all((o == 0xA5).all() for o in outs.values()), "a refused job wrote memory"
    dev.model.clear_errors()


def test_library_of_another_arch_is_refused(rtl, tmp_path_factory):
    other = arch_dir(tmp_path_factory, "sat_2x4")
    with pytest.raises(ArchMismatchError):
        hostpy.open(other, backend="rtl", library=rtl.device.library)


def test_bench_reports_simulated_cycles(rtl):
    from hostpy.bench import bench_gemms
    _prune_or_xfail(rtl, np.ones((8, 8), np.int8))        # bench_gemms prunes on the kernel
    recs = bench_gemms(rtl, shapes=((16, 128, 16),), repeat=1, log=lambda *_: None)
    assert {r["mode"] for r in recs} == {"DENSE", "SPARSE", "PRUNE"}
    assert all(r["sim_kernel_cycles"] > 0 and r["sim_cycles_per_s"] > 0 for r in recs)


def test_build_errors_are_backend_unavailable_with_the_reason(arch, tmp_path):
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(arch, broken, ignore=shutil.ignore_patterns("work", "reports"))
    kernel = broken / "rtl" / "sat_kernel.sv"
    kernel.write_text(kernel.read_text() + "\nthis is not verilog;\n")
    with pytest.raises(BackendUnavailableError, match="verilator failed"):
        hostpy.open(broken, backend="rtl")
    (broken / "rtl" / "filelist.f").write_text("sat_pe.sv\n")
    with pytest.raises(BackendUnavailableError, match="no module sat_kernel"):
        hostpy.open(broken, backend="rtl")


@pytest.mark.skipif(os.environ.get("SATGEN_HEAVY") != "1",
                    reason="a second Verilator build of the kernel (SATGEN_HEAVY=1, as make sim's heavy cases)")
@pytest.mark.parametrize("name", ["sat_2x4"])
def test_prune_with_m_not_rows_bit_exact_vs_numpy(tmp_path_factory, name):
    """PRUNE where M != rows = cols (sat_2x4: 8 x 8, M = 4, the BP copy from R x R blocks of W): both copies at
    every runtime n, shapes off the grid, ties and all-zero groups, under stalls, bit-exact vs numpy; then an
    FF and a BP GEMM with the kernel's own copies."""
    path = arch_dir(tmp_path_factory, name)
    acc = _open_rtl(path, memory=STALLY)
    ref = hostpy.open(path, backend="numpy")
    s = acc.spec
    rng = np.random.default_rng(21)
    try:
        for i, (cout, cin) in enumerate([(1, 1), (9, 13), (21, 45), (16, 64)]):
            w = _ops(rng, (cout, cin))
            w[min(1, cout - 1), : min(cin, s.m)] = 0
            for n in range(1, s.m):
                pw, pw_ref = acc.prune(w, n), ref.prune(w, n)
                for got, exp in ((pw.ff, pw_ref.ff), (pw.bp, pw_ref.bp)):
                    assert np.array_equal(got.values, exp.values) and np.array_equal(got.indices, exp.indices), (cout, cin, n)
            x, dy = _ops(rng, (cin, 5)), _ops(rng, (cout, 7))
            assert np.array_equal(acc.ff(pw, x), ref.ff(pw_ref, x))
            assert np.array_equal(acc.bp(pw, dy), ref.bp(pw_ref, dy))
    finally:
        acc.close()
