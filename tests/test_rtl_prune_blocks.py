"""PRUNE in the RTL kernel where rows != cols: the "blocks" shape (docs/RTL.md "PRUNE").

The CI vehicle is a small spec of sat_2x8_vu9p's shape class: C = 12 > R = 8 = q x M (M = 4, q = 2)
and one M x M block of W is exactly one 128-bit word, so the FF record (R rows x M positions) is q
words and a BP beat is q one-word blocks read at stride q words. 1:4 hardware, so runtime n = 3 keeps
spg = 3 > q records per group (the core, not the collection, sets the pace). Every job runs on
hostpy's rtl backend (the Verilator library of the whole kernel) and is compared byte for byte with
hostpy.golden.prune's two copies packed by hostpy.abi; sat_2x8_vu9p itself runs in `make sim`
(sim/run.py) because its Verilator build is long.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import hostpy
from gen.memmodel import MemoryModel
from gen.regmap import regmap
from gen.render import generate, render_files, rtl_prune_shape
from gen.spec import make_spec, preset, spec_to_dict
from hostpy import golden, nm
from hostpy.device import KernelCall
from gen.perf import prune_call
from sim.cycles import kernel_prune_beat_cycles
from test_hostpy_helpers import generated_spec

SPEC = make_spec(**{**spec_to_dict(preset("sat_2x8")), "name": "prune_blocks_8x12", "rows": 8, "cols": 12,
                    "n": 1, "m": 4, "axi_bits": 128, "max_k": 2048, "max_dim": 1024})
REPO = Path(__file__).resolve().parent.parent
STALLY = MemoryModel(read_latency=30, write_latency=20, words_per_cycle=0.5, stall_rate=0.2, seed=3)


def test_spec_is_of_the_blocks_class():
    q = SPEC.rows // SPEC.m
    assert SPEC.rows != SPEC.cols and q == 2 and SPEC.m * SPEC.m * SPEC.mem_data_bits == SPEC.axi_bits
    assert rtl_prune_shape(SPEC) == "blocks"
    assert rtl_prune_shape(preset("sat_2x8_vu9p")) == "blocks"
    assert rtl_prune_shape(preset("dense_vu9p")) is None
    # regmap.json says which shape the RTL kernel runs (null: PRUNE refused with bad_mode)
    assert regmap(SPEC)["rtl_prune_shape"] == "blocks" and regmap(preset("dense"))["rtl_prune_shape"] is None
    # a spec of no shape: C < R (a record's R groups would not fit the C lanes), and R != C with R not a multiple of M
    for fields in ({"rows": 16, "cols": 8}, {"rows": 10, "cols": 16}):
        other = make_spec(**{**spec_to_dict(SPEC), "name": "noshape", **fields})
        assert rtl_prune_shape(other) is None and regmap(other)["rtl_prune_shape"] is None
        assert "PRUNE is refused with bad_mode" in render_files(other)["rtl/sat_seq.sv"].decode()


@pytest.fixture(scope="module")
def acc(tmp_path_factory):
    out = tmp_path_factory.mktemp("prune_blocks") / SPEC.name
    generate(SPEC, out, log=lambda *_: None)
    with hostpy.open(out, backend="rtl", memory=STALLY) as a:
        yield a


def _weights(rng, rows, k, kind):
    if kind == "ties":
        w = rng.integers(-2, 3, (rows, k))
    elif kind == "extreme":
        w = rng.choice(np.array([-128, 127, -127, 0, 1, -1]), (rows, k))
    else:
        w = rng.integers(-128, 128, (rows, k))
    w = w.astype(np.int8)
    w[rows // 2, : min(k, 2 * SPEC.m)] = 0          # all-zero groups (both directions)
    w[0, ::3] = -128                                # the most negative value
    return w


def _prune_bytes(acc, w, n):
    """The kernel's four output buffers and hostpy's (golden copies packed by the ABI)."""
    s = SPEC
    got = acc._run(KernelCall("PRUNE", w.shape[0], w.shape[1], 0, acc.abi.pack_grouped(w, s.rows), n=n))
    ff, bp = golden.prune(w, n, s.m, data_bits=s.data_bits)
    want = {}
    want["ff_val"], want["ff_idx"] = acc.abi.pack_compressed(ff.values, ff.indices, s.rows)
    want["bp_val"], want["bp_idx"] = acc.abi.pack_compressed(bp.values, bp.indices, s.rows)
    return got, want


def test_prune_bit_exact_off_grid_with_stalls(acc):
    """Both copies at every runtime n, shapes off the grid (rows not a multiple of R, k not a multiple of M
    or R, short last groups, one lane tile narrower than q blocks), random / tied / extreme / zero groups,
    under random read and write stalls on a half-bandwidth memory; a SPARSE GEMM after each PRUNE."""
    s = SPEC
    acc.device.model.configure(STALLY)
    rng = np.random.default_rng(7)
    r, m = s.rows, s.m
    shapes = [(1, 1), (r, m), (2 * r + 3, 3 * m - 1), (r - 1, 5 * m + 2), (3 * r + 5, 2 * r + 3), (m + 1, 1),
              (1, 4 * r + 1), (int(rng.integers(1, 5 * r)), int(rng.integers(1, 12 * m)))]
    kinds = ["random", "ties", "extreme"]
    runtime_n = list(acc.runtime_n)
    assert runtime_n == [1, 2, 3]
    for i, (rows, k) in enumerate(shapes):
        n = runtime_n[i % len(runtime_n)]
        w = _weights(rng, rows, k, kinds[i % len(kinds)])
        got, want = _prune_bytes(acc, w, n)
        for name in want:
            assert got[name].tobytes() == want[name].tobytes(), f"PRUNE {rows}x{k} n={n}: {name} differs"
        # the kernel is clean for the next job: a SPARSE GEMM bit-exact
        x = rng.integers(-128, 128, (k, s.cols + 1)).astype(np.int8)
        comp = nm.compress(w, s.n, s.m, axis=1)
        assert np.array_equal(acc.gemm_sparse(comp, x), golden.gemm_sparse(comp, x, data_bits=8, acc_bits=s.acc_bits))


def test_prune_through_the_host_api(acc):
    """acc.prune (the data mover's tiling, ABI unpacking) equals golden.prune's copies at every n."""
    acc.device.model.configure(STALLY)
    rng = np.random.default_rng(3)
    w = _weights(rng, 21, 30, "random")
    for n in acc.runtime_n:
        pw = acc.prune(w, n=n)
        ff, bp = golden.prune(w, n, SPEC.m, data_bits=SPEC.data_bits)
        assert np.array_equal(pw.ff.values, ff.values) and np.array_equal(pw.ff.indices, ff.indices)
        assert np.array_equal(pw.bp.values, bp.values) and np.array_equal(pw.bp.indices, bp.indices)


def test_prune_cycles_follow_the_rule(acc):
    """Without stalls, PRUNE costs sim.cycles.kernel_prune_beat_cycles (FF + BP beats at max(spg, q) cycles)
    plus the fixed overhead: the read latency, the write latency and the last write bursts
    (up to 64 beats, depending on where the buffers sit; docs/RTL.md: 181..183 at [64, 2048]). Full and
    partial lane tiles, spg <= q and spg > q; a wrong per-beat rule is off by hundreds of cycles here."""
    mem = MemoryModel(read_latency=64)
    acc.device.model.configure(mem)
    rng = np.random.default_rng(5)
    # (256, 20): the last lane tile has one live record column of q = 2: its zero slots take their cycles too
    for rows, k, n in [(32, 256, 1), (29, 250, 3), (17, 41, 2), (256, 20, 1)]:
        w = _weights(rng, rows, k, "random")
        got, want = _prune_bytes(acc, w, n)
        assert all(got[x].tobytes() == want[x].tobytes() for x in want)
        over = acc.device.last_cycles - sum(kernel_prune_beat_cycles(SPEC, rows, k, n))
        # gen.perf's PRUNE model (same rule + its calibrated fixed terms): within 3 cycles
        assert abs(prune_call(SPEC, rows, k, mem, n).cycles - acc.device.last_cycles) <= 3, \
            (rows, k, n, acc.device.last_cycles, prune_call(SPEC, rows, k, mem, n).cycles)
        assert mem.read_latency + mem.write_latency < over <= mem.read_latency + mem.write_latency + 64 + 40, \
            (rows, k, n, acc.device.last_cycles, over)
    acc.device.model.configure(STALLY)


# ---- make sim-prune-blocks: the longer runs (cocotb with AXI pauses; sat_2x8_vu9p's own kernel) ----------

HEAVY = pytest.mark.skipif(os.environ.get("SATGEN_PRUNE_BLOCKS_SIM", "") != "1",
                           reason="one more sat_kernel build (cocotb) and sat_2x8_vu9p's long one: make sim-prune-blocks")


_generated = generated_spec


@HEAVY
def test_cocotb_kernel_prune_blocks():
    """sim/tb_kernel.py on the CI spec: test_prune (random, tied, extreme W off the grid at every runtime n,
    between GEMM jobs, random AXI pauses on every channel) and test_bad_registers (PRUNE's refusals)."""
    from sim.run import TESTBENCHES
    from sim.runner import run_tests
    run_tests(_generated(SPEC), "sat_kernel", TESTBENCHES["sat_kernel"], testcase=["test_prune", "test_bad_registers"])


@HEAVY
def test_vu9p_kernel_prune():
    """sat_2x8_vu9p's kernel (32 x 64, q = 4): PRUNE bit-exact on the rtl backend, [64, 2048] and shapes off the
    grid, cycles = kernel_prune_beat_cycles + the fixed overhead (read latency 64, no stalls); the measured
    cycles go to build/rtl_tests/sat_2x8_vu9p_prune_cycles.json (docs/RTL.md's table)."""
    spec = preset("sat_2x8_vu9p")
    out = _generated(spec)
    mem = MemoryModel(read_latency=64)
    rng = np.random.default_rng(11)
    jobs = []
    with hostpy.open(out, backend="rtl", memory=mem) as a:
        for rows, k, n in [(64, 2048, 2), (45, 2043, 2), (64, 2048, 5), (1, 1, 3), (33, 37, 7), (40, 100, 1)]:
            w = rng.integers(-128, 128, (rows, k)).astype(np.int8)
            w[rows // 2, : min(k, 2 * spec.m)] = 0
            w[0, ::3] = -128
            got = a._run(KernelCall("PRUNE", rows, k, 0, a.abi.pack_grouped(w, spec.rows), n=n))
            ff, bp = golden.prune(w, n, spec.m, data_bits=spec.data_bits)
            want = {}
            want["ff_val"], want["ff_idx"] = a.abi.pack_compressed(ff.values, ff.indices, spec.rows)
            want["bp_val"], want["bp_idx"] = a.abi.pack_compressed(bp.values, bp.indices, spec.rows)
            for name in want:
                assert got[name].tobytes() == want[name].tobytes(), f"vu9p PRUNE {rows}x{k} n={n}: {name} differs"
            beats = kernel_prune_beat_cycles(spec, rows, k, n)
            over = a.device.last_cycles - sum(beats)
            jobs.append({"rows": rows, "k": k, "n": n, "cycles": a.device.last_cycles, "ff_bp_rule": list(beats),
                         "overhead": over})
            assert mem.read_latency + mem.write_latency < over <= mem.read_latency + mem.write_latency + 64 + 40, jobs[-1]
    report = {"source": "measured: hostpy rtl backend (Verilator library of sat_kernel), ap_start write -> interrupt",
              "memory": {k: v for k, v in mem.to_dict().items()}, "jobs": jobs}
    (REPO / "build" / "rtl_tests" / "sat_2x8_vu9p_prune_cycles.json").write_text(json.dumps(report, indent=2) + "\n")
