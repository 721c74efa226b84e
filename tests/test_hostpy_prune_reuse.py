"""PRUNE's packed copies feed the sparse GEMMs directly (hostpy.accel, docs/HOSTPY.md).

``Accelerator.prune`` keeps the kernel's own output buffers per PRUNE block next to the unpacked
NMCompressed copies; ``ff`` / ``bp`` on that PrunedWeight pass them as a SPARSE call's A wherever the
call covers exactly one PRUNE block, and pack A from the arrays otherwise. Checked here: the kept
bytes are what packing the unpacked arrays gives (so reuse cannot change a result), results stay
bit-exact against hostpy.golden with and without reuse, a wrong block would be caught, and the
reuse really happens (pack_compressed calls counted on the Abi instance) where
``hostpy.accel.prune_reuse`` says it does.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hostpy
from hostpy import golden
from hostpy.accel import PrunedWeight, default_tile, prune_reuse, prune_tiles

from test_hostpy_helpers import arch_dir, csim_available

# (Cout, Cin, batch): off the R/M grid; the last ones large enough for several lane and k tiles.
SHAPES = [(5, 3, 2), (13, 37, 5), (24, 70, 9), (40, 50, 11)]
# Host tiles: square (FF and BP both reuse), FF-only reuse, a lane tile off the M grid (no reuse).
TILES = [None, (16, 16, 8), (16, 24, 8), (12, 16, 8)]


def _operands(shape, seed, bits):
    rng = np.random.default_rng(seed)
    cout, cin, batch = shape
    lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)
    dt = np.int8 if bits <= 8 else np.int16
    w = rng.integers(lo, hi, (cout, cin)).astype(dt)
    w[0, :] = lo                                   # ties and the most negative value
    w[-1, : min(cin, 8)] = 0                       # an all-zero group
    return w, rng.integers(lo, hi, (cin, batch)).astype(dt), rng.integers(lo, hi, (cout, batch)).astype(dt)


def _count_packs(acc) -> list:
    """Wrap the accelerator's Abi.pack_compressed with a counter (the real method still runs)."""
    calls, real = [], acc.abi.pack_compressed

    def counted(values, indices, tile):
        calls.append(values.shape)
        return real(values, indices, tile)
    acc.abi.pack_compressed = counted
    return calls


def _check_kept_bytes(acc, pw) -> int:
    """Every kept PRUNE block == pack_compressed of the unpacked arrays of that block; returns the block count."""
    s = acc.spec
    assert pw.packed is not None and pw.packed.spec == s and pw.packed.n == pw.ff.n
    blocks = 0
    for copy, kept in ((pw.ff, pw.packed.ff), (pw.bp, pw.packed.bp)):
        for (l0, l1, g0, g1), (val, idx) in kept.items():
            want = acc.abi.pack_compressed(copy.values[l0:l1, g0:g1], copy.indices[l0:l1, g0:g1], s.rows)
            assert np.array_equal(val, want[0]) and np.array_equal(idx, want[1]), (copy.axis, l0, l1, g0, g1)
            blocks += 1
    # The blocks tile each copy exactly once: lanes x groups covered.
    for copy, kept in ((pw.ff, pw.packed.ff), (pw.bp, pw.packed.bp)):
        lanes, g, _ = copy.values.shape
        cover = np.zeros((lanes, g), int)
        for l0, l1, g0, g1 in kept:
            cover[l0:l1, g0:g1] += 1
        assert (cover == 1).all()
    return blocks


@pytest.mark.parametrize("preset", ["sat_2x8", "sat_2x8_kv260", "sat_1x16"])
def test_prune_output_is_pack_of_its_unpacked_arrays(tmp_path_factory, preset):
    """The claim reuse rests on, on the numpy backend: every n of runtime_n, shapes off the grid, tiled PRUNE."""
    d = arch_dir(tmp_path_factory, preset)
    for tile in (None, (16, 16, 8), (16, 24, 8)):
        acc = hostpy.open(d, tile=tile)
        for i, shape in enumerate(SHAPES[:3] if tile is None else SHAPES[2:]):
            w, _, _ = _operands(shape, i, acc.spec.data_bits)
            for n in acc.runtime_n:
                calls = acc.calls
                pw = acc.prune(w, n=n)
                assert _check_kept_bytes(acc, pw) == 2 * (acc.calls - calls)      # an FF and a BP block per PRUNE call


@pytest.mark.skipif(not csim_available(), reason="gen.csim missing")
def test_prune_output_is_pack_of_its_unpacked_arrays_on_csim(tmp_path_factory):
    """The same on the generated HLS kernel (C-simulation): its padding bytes are zero, as packing writes them."""
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="csim", tile=(16, 16, 8))
    for i, shape in enumerate(SHAPES[1:]):
        w, x, dy = _operands(shape, 10 + i, acc.spec.data_bits)
        for n in acc.runtime_n:
            pw = acc.prune(w, n=n)
            _check_kept_bytes(acc, pw)
            ff, bp = golden.prune(w, n, acc.spec.m, data_bits=acc.spec.data_bits)
            kw = dict(data_bits=acc.spec.data_bits, acc_bits=acc.spec.acc_bits)
            assert np.array_equal(acc.ff(pw, x), golden.ff(ff, x, **kw))
            assert np.array_equal(acc.bp(pw, dy), golden.bp(bp, dy, **kw))


def test_prune_output_is_pack_of_its_unpacked_arrays_on_rtl(tmp_path_factory):
    """The same on the RTL kernel (Verilator): the sat_2x8 build tests/test_hostpy_rtl.py uses (cached in
    build/rtlsim-cache, so about 2 s here once it exists); ff/bp with the reused blocks bit-exact."""
    from hostpy.errors import BackendUnavailableError
    try:
        acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="rtl", tile=(16, 16, 8))
    except BackendUnavailableError as e:
        pytest.skip(f"no RTL backend here: {e}")
    try:
        s = acc.spec
        kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
        packs = _count_packs(acc)
        for i, shape in enumerate([(13, 37, 5), (40, 50, 11)]):
            w, x, dy = _operands(shape, 30 + i, s.data_bits)
            for n in acc.runtime_n:
                pw = acc.prune(w, n=n)
                _check_kept_bytes(acc, pw)
                ff, bp = golden.prune(w, n, s.m, data_bits=s.data_bits)
                packs.clear()
                assert np.array_equal(acc.ff(pw, x), golden.ff(ff, x, **kw))
                assert np.array_equal(acc.bp(pw, dy), golden.bp(bp, dy, **kw))
                assert packs == []
    finally:
        acc.close()


@pytest.mark.parametrize("tile", TILES)
def test_ff_bp_with_reuse_are_bit_exact_and_reuse_where_predicted(tmp_path_factory, tile):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    acc = hostpy.open(d, tile=tile)
    s = acc.spec
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    packs = _count_packs(acc)
    for i, shape in enumerate(SHAPES):
        w, x, dy = _operands(shape, 20 + i, s.data_bits)
        for n in acc.runtime_n:
            pw = acc.prune(w, n=n)
            ff, bp = golden.prune(w, n, s.m, data_bits=s.data_bits)
            reuse = prune_reuse(s, acc.tile, *w.shape)
            for which, run, want in (("ff", lambda: acc.ff(pw, x), golden.ff(ff, x, **kw)),
                                     ("bp", lambda: acc.bp(pw, dy), golden.bp(bp, dy, **kw))):
                packs.clear()
                calls, reused = acc.calls, acc.a_from_prune
                assert np.array_equal(run(), want), (shape, n, which)
                calls, reused = acc.calls - calls, acc.a_from_prune - reused
                # Reuse predicted: no A packed at all. Otherwise some calls pack; a call whose block happens
                # to coincide with a PRUNE block (e.g. the last, short one) still takes PRUNE's bytes.
                assert len(packs) + reused == calls, (shape, tile, n, which)
                assert len(packs) == 0 if reuse[which] else len(packs) > 0, (shape, tile, n, which)
    if tile is None:                   # default tiles: every shape here is one PRUNE block, reused by FF and BP
        assert all(prune_reuse(s, default_tile(s), c, k) == {"ff": True, "bp": True} for c, k, _ in SHAPES)


def test_several_blocks_are_each_reused_in_their_place(tmp_path_factory):
    """A square tile over a 40 x 50 W: 3 x 4 PRUNE blocks, every FF and BP call takes its own block."""
    acc = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), tile=(16, 16, 8))
    s = acc.spec
    w, x, dy = _operands((40, 50, 11), 7, s.data_bits)
    pw = acc.prune(w)
    assert prune_tiles(s, acc.tile, 40, 50) == (16, 16) and len(pw.packed.ff) == len(pw.packed.bp) == 3 * 4
    ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    packs = _count_packs(acc)
    assert np.array_equal(acc.ff(pw, x), golden.ff(ff, x, **kw))
    assert np.array_equal(acc.bp(pw, dy), golden.bp(bp, dy, **kw))
    assert packs == [] and acc.a_from_prune == 2 * 3 * 4 * 2        # (FF + BP) x 12 blocks x 2 column tiles

    # The check above would catch a block used in the wrong place: swap two FF blocks of one lane range.
    wrong = dict(pw.packed.ff)
    a, b = (0, 16, 0, 2), (0, 16, 2, 4)
    wrong[a], wrong[b] = wrong[b], wrong[a]
    bad = PrunedWeight(pw.ff, pw.bp)
    object.__setattr__(bad, "packed", dataclasses.replace(pw.packed, ff=wrong))
    assert not np.array_equal(acc.ff(bad, x), golden.ff(ff, x, **kw))


def test_fallbacks_pack_from_the_arrays(tmp_path_factory):
    s_dir = arch_dir(tmp_path_factory, "sat_2x8")
    acc = hostpy.open(s_dir)
    s = acc.spec
    w, x, dy = _operands((24, 70, 9), 3, s.data_bits)
    pw = acc.prune(w)
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    want = golden.ff(golden.prune(w, s.n, s.m, data_bits=s.data_bits)[0], x, **kw)
    packs = _count_packs(acc)
    # A PrunedWeight built from the arrays, or changed with dataclasses.replace, has no kernel bytes.
    for plain in (PrunedWeight(pw.ff, pw.bp), dataclasses.replace(pw, bp=pw.bp)):
        assert plain.packed is None
        packs.clear()
        assert np.array_equal(acc.ff(plain, x), want) and len(packs) == 1
    # Kernel bytes of another architecture (another ABI) are never taken: that accelerator packs.
    other = hostpy.open(arch_dir(tmp_path_factory, "sat_2x8_kv260"))
    other_packs = _count_packs(other)
    assert np.array_equal(other.ff(pw, x), want) and len(other_packs) == 1 and other.a_from_prune == 0
    # Another tile on the same architecture: blocks that do not line up are packed, results unchanged.
    split = hostpy.open(s_dir, tile=(8, 16, 4))
    split_packs = _count_packs(split)
    assert np.array_equal(split.ff(pw, x), want) and len(split_packs) == split.calls and split.a_from_prune == 0
    # The arrays are the kept bytes' twins: they cannot be changed in place.
    with pytest.raises(ValueError, match="read-only"):
        pw.ff.values[0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        pw.packed.bp[next(iter(pw.packed.bp))][0][0] = 1


def test_prune_tiles_follow_the_consumers():
    from gen.spec import preset
    s = preset("sat_2x8")
    # default tiles: any W within max_k x max_k is one PRUNE block, the one block of each FF/BP call
    assert prune_tiles(s, default_tile(s), 512, 4608) == (512, 4608)
    assert prune_reuse(s, default_tile(s), 512, 4608) == {"ff": True, "bp": True}
    # Cin beyond max_k: FF's k blocks win; BP (Cin = its lanes, one block of max_dim) cannot line up
    assert prune_tiles(s, default_tile(s), 64, 20000) == (64, 16384)
    assert prune_reuse(s, default_tile(s), 64, 20000) == {"ff": True, "bp": False}
    # Cout beyond max_k: the rows axis follows FF (lane block max_dim), BP's reduction blocks differ
    assert prune_reuse(s, default_tile(s), 20000, 64) == {"ff": True, "bp": False}
    # lane tile 12 is not whole groups: the rows axis takes BP's reduction block (16) if within the cap (8): no
    assert prune_tiles(s, (12, 16, 8), 40, 50) == (8, 16)
    assert prune_tiles(s, (16, 24, 8), 40, 50) == (16, 24)
    assert prune_reuse(s, (16, 24, 8), 40, 50) == {"ff": True, "bp": False}
    # Cin = 20 fits one FF k block: one block along Cin, which BP's lane blocks of 16 do not match
    assert prune_tiles(s, (16, 24, 8), 40, 20) == (16, 20)
    assert prune_reuse(s, (16, 24, 8), 40, 20) == {"ff": True, "bp": False}
    # Cin = 16 is one block for both consumers: both reuse
    assert prune_reuse(s, (16, 24, 8), 16, 16) == {"ff": True, "bp": True}
