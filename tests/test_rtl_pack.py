"""sat_pack in the whole RTL kernel: result beats that are not one AXI word (the 32x64 presets' case).

pack_3x5: a 3 x 5 array with 40-bit accumulators stores int64 results: one result beat (1 row x 5 x
64 b = 320 b) is not a 512-bit word, so sat_kernel gathers each 3-beat tile (960 b) in sat_pack
(g_tile) and sends it as two words, the second one zero padded (Abi.result_tile_words).
pack_3x4_w64: a 3 x 4 array on a 64-bit AXI port: a result beat (4 x 32 b = 128 b) is two whole
words, so sat_pack streams each beat out as two words (g_stream, the 32x64 presets' path: 2048-bit
beats, four 512-bit words). SPARSE and DENSE jobs on hostpy's rtl backend (Verilator library) with
a stalling memory, bit-exact against hostpy.golden.
"""
from __future__ import annotations

import numpy as np
import pytest

import hostpy
from gen.memmodel import MemoryModel
from gen.render import generate
from gen.spec import make_spec, preset, spec_to_dict
from hostpy import golden, nm
from hostpy.abi import Abi

_BASE = spec_to_dict(preset("sat_2x8"))
SPEC = make_spec(**{**_BASE, "name": "pack_3x5", "rows": 3, "cols": 5, "acc_bits": 40, "data_bits": 8, "max_k": 1024})
STREAM = make_spec(**{**_BASE, "name": "pack_3x4_w64", "rows": 3, "cols": 4, "axi_bits": 64, "max_k": 1024})


@pytest.fixture(scope="module", params=[SPEC, STREAM], ids=lambda s: s.name)
def acc(request, tmp_path_factory):
    spec = request.param
    out = tmp_path_factory.mktemp("pack") / spec.name
    generate(spec, out, log=lambda *_: None)
    kernel = (out / "rtl" / "sat_kernel.sv").read_text()
    assert "sat_pack #" in kernel                   # the kernel does pass results through sat_pack
    mem = MemoryModel(read_latency=30, write_latency=20, words_per_cycle=0.5, stall_rate=0.2, seed=3)
    with hostpy.open(out, backend="rtl", memory=mem) as a:
        yield a, spec


def test_result_tiles_padded_to_words():
    beat = SPEC.drain_rows * SPEC.cols * SPEC.mem_acc_bits
    tile = SPEC.rows * SPEC.cols * SPEC.mem_acc_bits
    assert beat % SPEC.axi_bits and Abi(SPEC).result_tile_words * SPEC.axi_bits > tile   # padding exists: g_tile
    beat = STREAM.drain_rows * STREAM.cols * STREAM.mem_acc_bits
    assert beat % STREAM.axi_bits == 0 and beat > STREAM.axi_bits                      # whole words: g_stream


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_and_dense_through_sat_pack(acc, seed):
    acc, spec = acc
    rng = np.random.default_rng(seed)
    for _ in range(3):
        rows, k, cols = int(rng.integers(1, 12)), int(rng.integers(1, 90)), int(rng.integers(1, 17))
        a = rng.integers(-128, 128, (rows, k)).astype(np.int8)
        b = rng.integers(-128, 128, (k, cols)).astype(np.int8)
        assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=spec.acc_bits))
        comp = nm.compress(a, spec.n, spec.m, axis=1)
        assert np.array_equal(acc.gemm_sparse(comp, b),
                              golden.gemm_sparse(comp, b, data_bits=8, acc_bits=spec.acc_bits))
