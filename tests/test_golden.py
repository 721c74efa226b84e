"""Golden models: N:M selection, compressed format, bit packing, the three GEMMs, PRUNE, BDWP/SR-STE.

Property tests (hypothesis) check the invariants on random matrices; the hand cases pin the tie
rule and the edge values that hardware must reproduce.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hostpy import bdwp
from hostpy.golden import bp, ff, gemm_dense, gemm_sparse, prune, wrap, wu
from hostpy.nm import (NMError, compress, decompress, idx_bits, is_nm, nm_mask, nm_topn_indices, pack_indices,
                       unpack_indices)

NM = [(1, 2), (2, 4), (1, 4), (2, 8), (4, 8), (1, 16), (3, 16), (7, 8), (15, 16)]


@st.composite
def int_matrix(draw, bits=8, max_side=24):
    rows = draw(st.integers(1, max_side))
    cols = draw(st.integers(1, max_side))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    # Small alphabets make ties and zero groups frequent.
    elems = draw(st.sampled_from([st.integers(lo, hi), st.sampled_from([0, 1, -1, lo, hi]), st.just(0)]))
    dt = np.int8 if bits <= 8 else np.int16
    return draw(hnp.arrays(dt, (rows, cols), elements=elems))


nm_pairs = st.sampled_from(NM)
axes = st.sampled_from([0, 1])


@settings(max_examples=150, deadline=None)
@given(int_matrix(), nm_pairs, axes)
def test_keeps_min_n_nonzeros_per_group(a, nm, axis):
    n, m = nm
    mask = nm_mask(a, n, m, axis)
    lanes = (a if axis == 1 else a.T)
    lmask = (mask if axis == 1 else mask.T)
    for lane, lm in zip(lanes, lmask):
        for g in range(0, lanes.shape[1], m):
            grp, gm = lane[g:g + m], lm[g:g + m]
            assert gm.sum() == min(n, len(grp))                      # N slots (fewer only if padded)
            assert (grp[gm] != 0).sum() == min(n, (grp != 0).sum())  # exactly min(N, nnz) non-zeros
            # Every kept magnitude >= every dropped magnitude.
            if gm.any() and (~gm).any():
                assert np.abs(grp[gm].astype(int)).min() >= np.abs(grp[~gm].astype(int)).max()
    assert is_nm(a * mask, n, m, axis)


@settings(max_examples=150, deadline=None)
@given(int_matrix(bits=16), nm_pairs, axes)
def test_compress_decompress_is_the_masked_matrix(a, nm, axis):
    n, m = nm
    c = compress(a, n, m, axis)
    assert c.values.shape == (a.shape[1 - axis], -(-a.shape[axis] // m), n)
    assert (np.diff(c.indices.astype(int), axis=-1) > 0).all()        # ascending within a group
    assert np.array_equal(decompress(c), a * nm_mask(a, n, m, axis))
    # Already N:M matrices compress losslessly.
    d = decompress(c)
    assert np.array_equal(decompress(compress(d, n, m, axis, require_nm=True)), d)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([2, 4, 8, 16]), st.data())
def test_pack_unpack_identity(m, data):
    idx = data.draw(hnp.arrays(np.uint8, st.integers(0, 200), elements=st.integers(0, m - 1)))
    packed = pack_indices(idx, m)
    assert len(packed) == -(-idx.size * idx_bits(m) // 8)
    assert np.array_equal(unpack_indices(packed, m, idx.size), idx)


def test_pack_is_lsb_first_bitstream():
    # m=8: 3-bit fields 5,3,7 -> bits 101 110 111 (LSB first) -> 0b11_011_101=0xDD, then 0b1=0x01.
    assert pack_indices(np.array([5, 3, 7], dtype=np.uint8), 8) == bytes([0xDD, 0x01])
    assert pack_indices(np.array([1, 2, 3, 0], dtype=np.uint8), 4) == bytes([0b00111001])
    with pytest.raises(NMError):
        pack_indices(np.array([8], dtype=np.uint8), 8)
    with pytest.raises(NMError):
        unpack_indices(b"\x00", 16, 3)


@settings(max_examples=120, deadline=None)
@given(int_matrix(max_side=20), nm_pairs, st.integers(1, 9), st.sampled_from([(8, 32), (16, 48), (8, 20)]),
       st.data())
def test_sparse_gemm_equals_dense_gemm_on_masked_matrix(a, nm, cols, widths, data):
    n, m = nm
    d, acc = widths
    a = a.astype(np.int16) if d == 16 else a
    lo, hi = -(1 << (d - 1)), (1 << (d - 1)) - 1
    b = data.draw(hnp.arrays(np.int16 if d > 8 else np.int8, (a.shape[1], cols), elements=st.integers(lo, hi)))
    c = compress(a, n, m, axis=1)
    got = gemm_sparse(c, b, data_bits=d, acc_bits=acc)
    want = gemm_dense(decompress(c), b, data_bits=d, acc_bits=acc)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    exact = decompress(c).astype(object) @ b.astype(object)          # Python ints: no overflow
    assert np.array_equal(want, np.vectorize(lambda v: ((v + (1 << (acc - 1))) % (1 << acc)) - (1 << (acc - 1)),
                                             otypes=[np.int64])(exact))


def test_tie_rule_lower_index_wins_and_exact_magnitude():
    g = np.array([[3, -3, 3, 0, 0, 0, 0, 0]])
    assert nm_topn_indices(g, 2).tolist() == [[0, 1]]
    assert nm_topn_indices(np.array([[0, 0, 0, 5, -5, 0, 0, 5]]), 2).tolist() == [[3, 4]]
    # |-128| = 128 outranks 127 (int8 magnitude computed one bit wider).
    assert nm_topn_indices(np.array([[127, 0, 0, -128]], dtype=np.int8), 1).tolist() == [[3]]
    # All-zero group: N slots at the lowest indices.
    assert nm_topn_indices(np.zeros((1, 16), dtype=np.int8), 3).tolist() == [[0, 1, 2]]
    # Floats: -0.0 and +0.0 tie, lower index wins; NaN is refused.
    assert nm_topn_indices(np.array([[-0.0, 0.0, 0.0, 0.0]]), 1).tolist() == [[0]]
    with pytest.raises(NMError, match="NaN"):
        nm_mask(np.array([[np.nan, 1.0, 2.0, 3.0]]), 1, 4)


def test_padding_of_last_group():
    a = np.array([[0, 0, 0, 0, 0, 0, 0, 0, 0, 9]], dtype=np.int8)     # K=10, M=8: second group pads 6 zeros
    c = compress(a, 4, 8, axis=1)
    assert c.indices.tolist() == [[[0, 1, 2, 3], [0, 1, 2, 3]]]         # pads fill the free slots
    assert c.values[0, 1].tolist() == [0, 9, 0, 0]
    assert np.array_equal(decompress(c), a)


def test_bdwp_masks_differ_by_direction():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 64))
    ffm, bpm = nm_mask(w, 2, 8, 1), nm_mask(w, 2, 8, 0)
    assert is_nm(w * ffm, 2, 8, 1) and is_nm(w * bpm, 2, 8, 0)
    # A mask that is N:M along Cin is generally not N:M along Cout (PAPER.md).
    assert not is_nm(w * ffm, 2, 8, 0)
    counts = (ffm.reshape(8, 8, 64)).sum(axis=1)                          # non-zeros per Cout group
    assert counts.max() > 2


def test_prune_produces_both_copies():
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (24, 20)).astype(np.int8)
    wf, wb = prune(w, 2, 8, data_bits=8)
    assert wf.axis == 1 and wb.axis == 0
    assert np.array_equal(decompress(wf), w * nm_mask(w, 2, 8, 1))
    assert np.array_equal(decompress(wb), w * nm_mask(w, 2, 8, 0))
    x = rng.integers(-128, 128, (20, 7)).astype(np.int8)
    dy = rng.integers(-128, 128, (24, 7)).astype(np.int8)
    assert np.array_equal(ff(wf, x, data_bits=8, acc_bits=32), decompress(wf).astype(np.int64) @ x)
    assert np.array_equal(bp(wb, dy, data_bits=8, acc_bits=32), decompress(wb).astype(np.int64).T @ dy)
    assert np.array_equal(wu(dy, x, data_bits=8, acc_bits=32), dy.astype(np.int64) @ x.T.astype(np.int64))
    with pytest.raises(NMError, match="axis 0"):
        bp(wf, dy, data_bits=8, acc_bits=32)
    with pytest.raises(NMError, match="axis 1"):
        ff(wb, x, data_bits=8, acc_bits=32)


def test_accumulator_wraps():
    assert wrap(np.array([2**31, -2**31 - 1, 5]), 32).tolist() == [-2**31, 2**31 - 1, 5]
    assert wrap(np.array([2**47]), 48).tolist() == [-2**47]
    a = np.full((1, 4), -128, dtype=np.int8)
    b = np.full((4, 1), -128, dtype=np.int8)
    # 4 * (-128)^2 = 65536 = 2^16 wraps to 0 in a 16-bit accumulator; one product less does not wrap.
    assert gemm_dense(a, b, data_bits=8, acc_bits=16).tolist() == [[0]]
    assert gemm_dense(a[:, :3], b[:3], data_bits=8, acc_bits=17).tolist() == [[49152]]


def test_operand_range_and_shape_errors():
    with pytest.raises(NMError, match="int4 range"):
        gemm_dense(np.array([[8]]), np.array([[1]]), data_bits=4, acc_bits=16)
    with pytest.raises(NMError, match="integer array"):
        gemm_dense(np.array([[1.0]]), np.array([[1]]), data_bits=8, acc_bits=32)
    with pytest.raises(NMError, match="do not chain"):
        gemm_dense(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8), data_bits=8, acc_bits=32)
    with pytest.raises(NMError, match="not 2:8 sparse"):
        compress(np.ones((2, 8), np.int8), 2, 8, require_nm=True)
    with pytest.raises(NMError, match="power of two"):
        nm_mask(np.ones((2, 8)), 2, 6)


def test_srste_decay_options():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((16, 16))
    masks = bdwp.masks_for(w, "bdwp", 2, 8)
    for name, kept in [("ff", masks.ff), ("bp", masks.bp), ("union", masks.ff | masks.bp),
                       ("intersection", masks.ff & masks.bp)]:
        assert np.array_equal(bdwp.srste_decay(w, masks, 0.5, name), 0.5 * (~kept) * w)
    assert not bdwp.srste_decay(w, bdwp.masks_for(w, "dense", 2, 8)).any()
    with pytest.raises(ValueError, match="decay_mask"):
        bdwp.srste_decay(w, masks, decay_mask="both")


def test_bdwp_linear_step_uses_each_mask_in_its_pass():
    rng = np.random.default_rng(4)
    w, x, dy = rng.standard_normal((16, 24)), rng.standard_normal((24, 5)), rng.standard_normal((16, 5))
    masks = bdwp.masks_for(w, "bdwp", 2, 4)
    assert np.allclose(bdwp.linear_forward(w, x, masks), (w * masks.ff) @ x)
    dx, dw = bdwp.linear_backward(w, x, dy, masks)
    assert np.allclose(dx, (w * masks.bp).T @ dy)
    assert np.allclose(dw, dy @ x.T)                                       # WU stays dense
    s = bdwp.masks_for(w, "srste", 2, 4)
    # FF-only SR-STE: dX goes through the FF-masked W, as SR-STE's and PGF's autograd code does.
    assert np.array_equal(s.bp, s.ff) and np.allclose(bdwp.linear_backward(w, x, dy, s)[0], (w * s.ff).T @ dy)
