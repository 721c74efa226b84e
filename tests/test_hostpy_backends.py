"""Backend equivalence: every backend returns exactly what the golden model computes.

numpy (the golden model behind the Device protocol) and csim (the generated HLS kernel compiled by
g++, called through ctypes) on sat_2x8, sat_2x4, the dense baseline and sat_2x8_int16 (int16 -> 48-bit
accumulators in int64 containers), over shapes that are not
multiples of M or of the PE array, with host tiling (k split across calls) exercised. Also the
host-side pieces: quantization, im2col/col2im, buffer reuse, the N:M mask of a compressed copy.
"""
from __future__ import annotations

import numpy as np
import pytest

import hostpy
from hostpy import golden
from hostpy.layout import col2im, conv_out_size, im2col
from hostpy.nm import nm_mask
from hostpy.errors import FixedPointOverflowError
from hostpy.quant import dequantize, quantize
from hostpy.train import kept_mask

from test_hostpy_helpers import arch_dir, csim_available

PRESETS = ("sat_2x8", "sat_2x4", "dense", "sat_2x8_int16")
BACKENDS = ["numpy", pytest.param("csim", marks=pytest.mark.skipif(not csim_available(), reason="gen.csim missing"))]
# (Cout, Cin, batch): odd sizes, Cin not a multiple of M, one shape large enough to tile.
SHAPES = [(8, 16, 8), (13, 37, 5), (24, 70, 19)]
TILE = (16, 32, 16)          # host tiles smaller than the shapes: several calls, k split, partial sums


def _operands(shape, seed, bits=8):
    rng = np.random.default_rng(seed)
    cout, cin, batch = shape
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    dt = np.int8 if bits <= 8 else np.int16
    w = rng.integers(lo, hi, (cout, cin)).astype(dt)
    w[0, :] = lo                                  # most negative operands and ties in one row
    w[1 % cout, : min(cin, 8)] = 0                # an all-zero group
    x = rng.integers(lo, hi, (cin, batch)).astype(dt)
    x[:, 0] = lo
    dy = rng.integers(lo, hi, (cout, batch)).astype(dt)
    return w, x, dy


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("preset", PRESETS)
def test_backend_matches_golden(tmp_path_factory, preset, backend):
    d = arch_dir(tmp_path_factory, preset)
    for tile in (None, TILE):
        acc = hostpy.open(d, backend=backend, tile=tile)
        s = acc.spec
        kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
        for i, shape in enumerate(SHAPES):
            w, x, dy = _operands(shape, i, s.data_bits)
            assert np.array_equal(acc.wu(dy, x), golden.wu(dy, x, **kw))
            assert np.array_equal(acc.gemm(w, x), golden.gemm_dense(w, x, **kw))
            if not s.sparse:       # the baseline runs a pruned weight densely: same numbers as SPARSE
                ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
                assert np.array_equal(acc.ff(ff, x), golden.ff(ff, x, **kw))
                assert np.array_equal(acc.bp(bp, dy), golden.bp(bp, dy, **kw))
                continue
            p = acc.prune(w)
            ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
            for got, ref in ((p.ff, ff), (p.bp, bp)):
                assert got.axis == ref.axis and got.shape == ref.shape
                assert np.array_equal(got.values, ref.values) and np.array_equal(got.indices, ref.indices)
            y = acc.ff(p, x)
            assert y.dtype == acc.arch.acc_dtype
            assert np.array_equal(y, golden.ff(ff, x, **kw))
            assert np.array_equal(acc.bp(p, dy), golden.bp(bp, dy, **kw))
            # A dense weight that is already N:M is accepted and compressed losslessly.
            assert np.array_equal(acc.ff(hostpy.nm.decompress(ff), x), y)
        if tile is not None:
            assert acc.calls > 3 * len(SHAPES) * (3 if s.sparse else 1)


@pytest.mark.skipif(not csim_available(), reason="gen.csim missing")
def test_csim_equals_numpy_on_random_calls(tmp_path_factory):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    ref, sim = hostpy.open(d, backend="numpy"), hostpy.open(d, backend="csim")
    rng = np.random.default_rng(11)
    for _ in range(6):
        cout, cin, batch = (int(v) for v in rng.integers(1, 48, 3))
        w, x, dy = _operands((cout, cin, batch), int(rng.integers(1 << 30)))
        pr, ps = ref.prune(w), sim.prune(w)
        assert np.array_equal(ps.ff.values, pr.ff.values) and np.array_equal(ps.bp.indices, pr.bp.indices)
        assert np.array_equal(sim.ff(ps, x), ref.ff(pr, x))
        assert np.array_equal(sim.bp(ps, dy), ref.bp(pr, dy))
        assert np.array_equal(sim.wu(dy, x), ref.wu(dy, x))


@pytest.mark.skipif(not csim_available(), reason="gen.csim missing")
def test_csim_reuses_buffers(tmp_path_factory):
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="csim")
    w, x, _ = _operands((16, 64, 8), 3)
    acc.gemm(w, x)
    n = acc.device._pool.allocations
    for _ in range(3):
        acc.gemm(w, x)
        acc.gemm(w[:5], x[:, :3])
    # word-aligned pooled buffers for the inputs a_val, b and the output c, allocated once
    assert acc.device._pool.allocations == n == 3


def test_regmap_version_and_kernel_name_match_the_generator():
    from gen.regmap import KERNEL_NAME, REGMAP_VERSION
    assert hostpy.REGMAP_VERSION == REGMAP_VERSION
    pynq_backend = pytest.importorskip("hostpy.backends.pynq_backend")
    assert pynq_backend.KERNEL_NAME == KERNEL_NAME


def test_k_split_partial_sums_equal_single_call(tmp_path_factory):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    w, x, dy = _operands((9, 200, 7), 5)
    whole, split = hostpy.open(d), hostpy.open(d, tile=(4, 16, 3))
    p = whole.prune(w)
    assert np.array_equal(split.ff(p, x), whole.ff(p, x))
    assert np.array_equal(split.bp(p, dy), whole.bp(p, dy))
    assert np.array_equal(split.wu(dy, x), whole.wu(dy, x))
    assert whole.calls == 4 and split.calls > 100


# ---- host-side pieces -----------------------------------------------------------------------
def test_quantize_rounds_half_to_even_and_dequantizes():
    x = np.array([-1.0, -0.5, 0.0, 0.25, 0.75, 1.0]) * 127 * 0.01
    q = quantize(x, 8)
    assert q.scale == pytest.approx(0.01)
    assert q.q.tolist() == [-127, -64, 0, 32, 95, 127]      # -63.5 -> -64 (even), 31.75 -> 32, 95.25 -> 95
    assert quantize(np.array([0.5, 1.5, 2.5]), 8, scale=1.0).q.tolist() == [0, 2, 2]
    assert np.abs(q.dequantize() - x).max() <= q.scale / 2 + 1e-12
    assert quantize(np.zeros(4), 8).scale == 1.0
    assert quantize(np.ones(3), 16).q.dtype == np.int16 and quantize(np.ones(3), 16).q.max() == 32767


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32, np.int8])
@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_quantize_is_the_documented_formula(dtype, bits):
    """quantize (five passes, range checked from the extremes) == the module docstring's formula computed
    the plain way: scale = max|x| / (2^(bits-1) - 1), q = rint(float64(x) / scale), on random tensors with
    exact .5 ties, both signs at the extreme, an all-negative and a one-element tensor, and an explicit scale."""
    rng = np.random.default_rng(bits)
    qmax = (1 << (bits - 1)) - 1
    cases = [rng.standard_normal((37, 53)) * 7, -np.abs(rng.standard_normal(64)), np.array([3.0]),
             np.array([-2.0, 2.0, 1.0, 0.5, -0.5, 1.5])]
    ties = np.arange(-40, 41) + 0.5                        # x / scale = k + 0.5 exactly at scale 1
    for x in cases:
        x = (x * 100 if np.dtype(dtype).kind in "iu" else x).astype(dtype)
        xf = x.astype(np.float64)
        amax = float(np.abs(xf).max())
        scale = amax / qmax if amax > 0 else 1.0
        got = quantize(x, bits)
        assert got.scale == scale
        assert np.array_equal(got.q, np.rint(xf / scale).astype(got.q.dtype)) and got.q.dtype == np.dtype(
            np.int8 if bits <= 8 else np.int16)
    if bits >= 8:
        assert np.array_equal(quantize(ties, bits, scale=1.0).q, np.rint(ties))
    with pytest.raises(FixedPointOverflowError, match=r"codes \[-3, 300\]"):
        quantize(np.array([-3.0, 300.0]), 8, scale=1.0)


def test_quantized_gemm_approximates_float(tmp_path_factory):
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"))
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((16, 40)), rng.standard_normal((40, 12))
    qa, qb = quantize(a, 8), quantize(b, 8)
    got = dequantize(acc.gemm(qa.q, qb.q), qa.scale, qb.scale)
    exact = qa.dequantize() @ qb.dequantize()
    assert np.allclose(got, exact, rtol=0, atol=1e-9)     # integer GEMM is exact; error is quantization only
    assert np.abs(got - a @ b).max() < 0.05 * np.abs(a @ b).max()


def _conv_direct(x, w, stride, pad):
    b, c, h, wd = x.shape
    cout, _, kh, kw = w.shape
    ho, wo = conv_out_size(h, kh, stride, pad), conv_out_size(wd, kw, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((b, cout, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("bcij,ocij->bo", patch, w)
    return out


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1)])
def test_im2col_gemm_is_convolution_and_col2im_is_its_adjoint(stride, pad):
    rng = np.random.default_rng(stride * 10 + pad)
    x = rng.standard_normal((3, 4, 7, 6))
    w = rng.standard_normal((5, 4, 3, 3))
    cols = im2col(x, 3, 3, stride, pad)
    ho, wo = conv_out_size(7, 3, stride, pad), conv_out_size(6, 3, stride, pad)
    y = (w.reshape(5, -1) @ cols).reshape(5, 3, ho, wo).transpose(1, 0, 2, 3)
    assert np.allclose(y, _conv_direct(x, w, stride, pad))
    c = rng.standard_normal(cols.shape)
    assert np.isclose((cols * c).sum(), (x * col2im(c, x.shape, 3, 3, stride, pad)).sum())


def test_kept_mask_of_pruned_copies_is_the_nm_mask(tmp_path_factory):
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x4"))
    w, _, _ = _operands((12, 20, 1), 9)
    p = acc.prune(w)
    assert np.array_equal(kept_mask(p.ff), nm_mask(w, 2, 4, axis=1))
    assert np.array_equal(kept_mask(p.bp), nm_mask(w, 2, 4, axis=0))


def test_hostpy_imports_with_numpy_only():
    """A board has numpy (+ pynq): importing hostpy and its training/CLI modules pulls in nothing else."""
    import subprocess
    import sys
    code = ("import sys, hostpy, hostpy.train, hostpy.suite, hostpy.bench, hostpy.__main__, hostpy.backends.csim, "
            "hostpy.backends.xrt_backend\n"
            "print(sorted(m for m in ('jinja2', 'click', 'pynq', 'matplotlib', 'sklearn', 'pyxrt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.stdout.strip() == "[]"
