"""Memory ABI v2 (hostpy/abi.py): exact layouts, sizes, alignment, density, and its place in regmap.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gen.regmap import ABI_VERSION as REGMAP_ABI_VERSION
from gen.regmap import regmap
from gen.spec import PRESETS, make_spec
from hostpy.abi import ABI_VERSION, Abi, AbiError, Records
from hostpy.nm import compress

SPECS = list(PRESETS.values()) + [make_spec(name="odd", n=3, m=8, rows=5, cols=3, axi_bits=64)]
SHAPES = [(1, 1), (13, 37), (8, 8), (70, 300), (9, 8)]


def _ints(rng, bits, shape):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), shape)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_grouped_round_trip_and_size(spec):
    abi, rng = Abi(spec), np.random.default_rng(1)
    for lanes, length in SHAPES:
        for tile in (spec.rows, spec.cols):
            x = _ints(rng, spec.data_bits, (lanes, length))
            buf = abi.pack_grouped(x, tile)
            assert buf.dtype == np.uint8 and buf.size == abi.grouped_bytes(lanes, length, tile)
            assert buf.size % abi.word_bytes == 0
            assert np.array_equal(abi.unpack_grouped(buf, lanes, length, tile), x)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.sparse], ids=lambda s: s.name)
def test_compressed_round_trip_every_runtime_n(spec):
    abi, rng = Abi(spec), np.random.default_rng(2)
    for lanes, length in SHAPES:
        g = -(-length // spec.m)
        for n in range(1, spec.m + 1):
            v = _ints(rng, spec.data_bits, (lanes, g, n))
            i = rng.integers(0, spec.m, (lanes, g, n))
            vb, ib = abi.pack_compressed(v, i, spec.rows)
            assert (vb.size, ib.size) == abi.compressed_bytes(lanes, length, spec.rows, n)
            assert vb.size % abi.word_bytes == 0 and ib.size % abi.word_bytes == 0
            v2, i2 = abi.unpack_compressed(vb, ib, lanes, length, spec.rows, n)
            assert np.array_equal(v2, v) and np.array_equal(i2, i)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_result_round_trip(spec):
    abi, rng = Abi(spec), np.random.default_rng(3)
    for rows, cols in SHAPES:
        c = _ints(rng, spec.acc_bits, (rows, cols))
        buf = abi.pack_result(c)
        assert buf.size == abi.result_bytes(rows, cols) and buf.size % abi.word_bytes == 0
        assert np.array_equal(abi.unpack_result(buf, rows, cols), c)


def test_sat_2x8_bytes_by_hand():
    """The documented sat_2x8 layout, element by element (docs/FORMAT.md), not through the packer's own maths."""
    s = PRESETS["sat_2x8"]
    abi = Abi(s)
    rows, k = 11, 20                                  # 2 lane tiles of 8, 3 groups of 8
    x = np.arange(rows * k, dtype=np.int64).reshape(rows, k) % 251 - 125
    buf = abi.pack_grouped(x, 8)
    assert buf.size == 2 * 3 * 64                     # one 512-bit record per word
    for r in range(rows):
        for p in range(k):
            t, lane, g, pos = r // 8, r % 8, p // 8, p % 8
            byte = (t * 3 + g) * 64 + lane * 8 + pos
            assert np.int8(buf[byte]) == x[r, p]
    assert not buf[(1 * 3 + 0) * 64 + 3 * 8:(1 * 3 + 0) * 64 + 8 * 8].any()   # lanes 11..15 are zero
    # compressed: value record = 8 lanes x 2 slots (16 B, 4 per word); index record 48 b (10 per word)
    c = compress(x, 2, 8)
    vb, ib = abi.pack_compressed(c.values, c.indices, 8)
    assert vb.size == 2 * 64 and ib.size == 2 * 64
    for r in range(rows):
        t, lane = r // 8, r % 8
        for g in range(3):
            for slot in range(2):
                assert np.int8(vb[t * 64 + g * 16 + lane * 2 + slot]) == c.values[r, g, slot]
                bit = t * 512 + g * 48 + (lane * 2 + slot) * 3
                word = int.from_bytes(ib.tobytes(), "little")
                assert (word >> bit) & 7 == c.indices[r, g, slot]


def test_records_packing_rule():
    assert (Records(48, 512).per_word, Records(48, 512).words(10), Records(48, 512).words(11)) == (10, 1, 2)
    assert (Records(1024, 512).per_word, Records(1024, 512).words(3)) == (0, 6)
    assert Records(512, 512).density == 1.0


@pytest.mark.parametrize("spec", [s for s in PRESETS.values() if s.sparse], ids=lambda s: s.name)
def test_compressed_density_at_least_90_percent_on_presets(spec):
    """Issue 8: information bits (values at data_bits + indices) over occupied bits >= 90 %."""
    abi = Abi(spec)
    lanes, length = spec.rows, spec.m * 4096          # a long operand: tile tails negligible
    vbytes, ibytes = abi.compressed_bytes(lanes, length, spec.rows)
    info = lanes * (length // spec.m) * spec.n * (spec.data_bits + spec.idx_bits)
    assert info / ((vbytes + ibytes) * 8) >= 0.90


def test_call_bytes_and_errors():
    s = PRESETS["sat_2x8"]
    abi = Abi(s)
    sizes = abi.call_bytes("SPARSE", 16, 64, 16)
    assert sizes == {"a_val": 2 * 2 * 64, "a_idx": 2 * 64, "b": 2 * 8 * 64, "c": 4 * 4 * 64}
    assert set(abi.call_bytes("PRUNE", 16, 64, 0)) == {"a_val", "ff_val", "ff_idx", "bp_val", "bp_idx"}
    with pytest.raises(AbiError, match="unknown mode"):
        abi.call_bytes("FOO", 1, 1, 1)
    with pytest.raises(AbiError, match="shorter"):
        abi.unpack_grouped(np.zeros(10, np.uint8), 8, 8, 8)
    with pytest.raises(AbiError, match="n must be"):
        abi.compressed_bytes(8, 8, 8, n=9)
    with pytest.raises(AbiError, match="index out of range"):
        abi.pack_compressed(np.zeros((1, 1, 2)), np.full((1, 1, 2), 8), 8)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_regmap_carries_the_abi(spec):
    rm = json.loads(json.dumps(regmap(spec)))
    assert rm["abi"]["version"] == ABI_VERSION == REGMAP_ABI_VERSION
    assert rm["abi"]["word_bytes"] * 8 == spec.axi_bits
    for a in rm["args"]:
        if a["kind"] == "ptr":
            assert a["ctype"] == "word_t" and 0 <= a["bank"] < 4
    assert {a["name"] for a in rm["args"]} >= {"mode", "rows", "k", "cols", "n", "status"}


@pytest.mark.parametrize("spec", [PRESETS["sat_2x8"], PRESETS["sat_2x8_kv260"], PRESETS["sat_1x16"],
                                  make_spec(name="odd", n=3, m=8, rows=5, cols=3, axi_bits=64)], ids=lambda s: s.name)
def test_im2col_grouped_is_im2col_then_pack(spec):
    from hostpy.layout import im2col, im2col_grouped
    abi, rng = Abi(spec), np.random.default_rng(4)
    for shape, k, stride, pad in [((2, 3, 7, 7), 3, 1, 1), ((1, 16, 8, 8), 3, 2, 1), ((3, 5, 4, 4), 1, 1, 0)]:
        x = _ints(rng, spec.data_bits, shape).astype(abi.data_dtype)
        op = im2col_grouped(x, k, k, abi, stride, pad)
        cols = im2col(x, k, k, stride, pad)
        assert (op.lanes, op.length, op.tile) == (cols.shape[1], cols.shape[0], spec.cols)
        assert np.array_equal(op.buf, abi.pack_grouped(cols.T, spec.cols))


def test_grouped_b_through_the_accelerator(tmp_path):
    """FF with B handed over already in the kernel layout == FF with the dense X_col, bit for bit."""
    import hostpy
    from gen.render import generate
    from hostpy.layout import im2col, im2col_grouped
    spec = PRESETS["sat_2x8"]
    generate(spec, tmp_path / "a", log=lambda *a: None)
    acc = hostpy.open(tmp_path / "a", backend="numpy")
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (2, 8, 6, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (16, 72)).astype(np.int8)
    pw = acc.prune(w)
    want = acc.ff(pw, im2col(x, 3, 3, 1, 1))
    got = acc.ff(pw, im2col_grouped(x, 3, 3, acc.abi, 1, 1))
    assert np.array_equal(got, want)
    small = hostpy.open(tmp_path / "a", backend="numpy", tile=(16, 16, 16))     # host tiling splits B
    assert np.array_equal(small.ff(pw, im2col_grouped(x, 3, 3, acc.abi, 1, 1)), want)
    with pytest.raises(hostpy.errors.ShapeError, match="quantize first"):
        im2col_grouped(x.astype(np.float32), 3, 3, acc.abi)


@pytest.mark.parametrize("field_bits", [1, 2, 3, 5, 7, 8, 9, 12, 16, 17, 24, 31, 33, 48, 63, 64])
@pytest.mark.parametrize("nf,word_bits", [(3, 64), (16, 512), (40, 128)])
def test_field_packing_round_trips_and_places_bits_little_endian(field_bits, nf, word_bits):
    """Every field width, in records shorter and longer than a word: the bytes hold field e at bits
    [e*b, (e+1)*b) of its record (checked bit by bit), and unpacking returns the fields."""
    from hostpy.abi import _bytes_to_records, _records_to_bytes
    rng = np.random.default_rng(field_bits * 1000 + nf)
    tiles, nrec = 2, 5
    hi = (1 << field_bits) - 1
    fields = rng.integers(0, hi, (tiles, nrec, nf), dtype=np.uint64, endpoint=True)
    rec = Records(nf * field_bits, word_bits)
    buf = _records_to_bytes(fields, field_bits, rec)
    assert buf.size == tiles * rec.words(nrec) * word_bits // 8
    assert (_bytes_to_records(buf, tiles, nrec, nf, field_bits, rec) == fields).all()
    bits = np.unpackbits(buf, bitorder="little").reshape(tiles, -1)
    for t, r, e in ((0, 0, 0), (1, nrec - 1, nf - 1), (1, 2, nf // 2)):
        if rec.per_word:
            start = (r // rec.per_word) * word_bits + (r % rec.per_word) * rec.bits
        else:
            start = r * rec.words_per_record * word_bits
        got = bits[t, start + e * field_bits:start + (e + 1) * field_bits]
        assert int(sum(int(b) << i for i, b in enumerate(got))) == int(fields[t, r, e])
