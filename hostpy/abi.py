"""Memory ABI v2: how every kernel operand sits in device memory (the one owner of that layout).

The compressed N:M *format* (hostpy.nm, docs/FORMAT.md) is hardware-neutral; this module fixes the
burst-friendly *memory layout* the kernels (HLS and RTL) read and write. Both kernels, the C API of
the C-simulation library, the testbenches and every host backend use these functions; nothing else
computes an operand address. docs/FORMAT.md ("Memory ABI v2") is the prose version.

Words and records
    A *word* is one AXI data beat: ``spec.axi_bits`` bits, bytes little-endian. An operand region
    is a whole number of words and starts on a word boundary (pointers must be word-aligned). A
    region is cut into *lane tiles* (T lanes, the array rows R or columns C the tile feeds) and
    each lane tile starts on a word boundary too. Inside a tile the data is a sequence of
    *records*, one per array step, in the order the array consumes them. A record of ``r`` bits
    with r <= word bits is packed ``floor(word/r)`` to a word (record i of the tile at word
    i // per_word, bit (i % per_word) * r; the rest of the word is zero); a longer record takes
    ``ceil(r/word)`` whole words. Fields inside a record are little-endian: field e at bits
    [e*b, (e+1)*b).

Layouts (G = ceil(len / M) groups; positions past the end are zero, lanes past the end are zero)
    grouped      dense X[lanes][len] grouped along len: record (tile, g) = T lanes x M positions,
                 field (lane, p) = X[tile*T + lane][g*M + p] at mem_data_bits.
                 Used by: DENSE A (lanes = rows, T = R), SPARSE/DENSE B (B[k][cols] as its
                 columns: lanes = cols, T = C), PRUNE's dense W (lanes = rows, T = R).
    compressed   N:M values[L][G][n] + indices, groups along the reduction axis: two regions
                 (values, indices), record (tile, g, u) = T lanes x n_hw slots, field (lane, s) =
                 kept weight u*n_hw + s of group g of lane tile*T + lane (values at
                 mem_data_bits, indices at idx_bits). A job's ``n`` may differ from the hardware's
                 n_hw = spec.n (runtime N): a group takes ceil(n / n_hw) records, unused slots are
                 value 0 / index 0. Used by: SPARSE A (T = R), PRUNE's FF copy (lanes = rows of W)
                 and BP copy (lanes = columns of W), both T = R, so PRUNE's outputs are FF/BP
                 GEMM operands as they stand.
    result       C[rows][cols] as R x C tiles, tile (rt, ct) at index rt * ceil(cols/C) + ct, each
                 tile row-major (field (i, j) at mem_acc_bits) padded to whole words.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gen.spec import ArchSpec

__all__ = ["ABI_VERSION", "Records", "Abi", "AbiError", "GroupedOperand"]

ABI_VERSION = 2


class AbiError(ValueError):
    """A buffer or shape that does not match the memory ABI."""


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Records:
    """Packing of equal records of ``bits`` into words of ``word_bits``."""

    bits: int
    word_bits: int

    @property
    def per_word(self) -> int:
        """Records per word (0 when a record is longer than a word)."""
        return self.word_bits // self.bits

    @property
    def words_per_record(self) -> int:
        """Words a record takes when it is longer than a word (1 otherwise)."""
        return _cdiv(self.bits, self.word_bits) if self.per_word == 0 else 1

    def words(self, count: int) -> int:
        """Words that ``count`` records of one tile occupy."""
        return _cdiv(count, self.per_word) if self.per_word else count * self.words_per_record

    @property
    def density(self) -> float:
        """Fraction of the occupied bits that carry record data."""
        if self.per_word:
            return self.per_word * self.bits / self.word_bits
        return self.bits / (self.words_per_record * self.word_bits)


@dataclass(frozen=True)
class GroupedOperand:
    """A dense matrix already in the grouped layout: ``buf`` holds grouped(X[lanes][length], tile).

    Produced without a dense intermediate (e.g. :func:`hostpy.layout.im2col_grouped`) and passed to
    the GEMMs as B (lanes = columns of B, length = k, tile = C) to skip the host-side re-layout.
    """

    buf: np.ndarray
    lanes: int
    length: int
    tile: int


# ---- bit-level helpers ------------------------------------------------------------------------

def _to_fields(a: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned ``bits``-wide fields of the integers in ``a`` (two's complement for signed)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu" and a.dtype.itemsize * 8 == bits:        # already one container per field: reinterpret
        return np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}")
    u = np.ascontiguousarray(a.astype(np.int64)).view(np.uint64)
    return u if bits == 64 else u & np.uint64((1 << bits) - 1)


def _container_bytes(field_bits: int) -> int:
    """Bytes of the narrowest unsigned NumPy integer holding a ``field_bits``-wide field."""
    return next(c for c in (1, 2, 4, 8) if 8 * c >= field_bits)


def _records_to_bytes(fields: np.ndarray, field_bits: int, rec: Records) -> np.ndarray:
    """[tiles, nrec, F] unsigned fields -> the tiles' words, bytes (tiles each padded to words)."""
    tiles, nrec, nf = fields.shape
    wb = rec.word_bits
    if field_bits in (8, 16, 32, 64):             # container-wide fields: stay at byte level
        fb = field_bits // 8                      # 1, 2, 4 or 8: container widths
        recs = np.ascontiguousarray(fields.astype(f"<u{fb}")).view(np.uint8).reshape(tiles, nrec, nf * fb)
        return _place_records(recs, rec, wb // 8)
    cb = _container_bytes(field_bits)              # unpack from the narrowest container: 8x less than from u8
    bits = np.unpackbits(fields.astype(f"<u{cb}").view(np.uint8).reshape(tiles, nrec, nf, cb), axis=-1,
                         bitorder="little")[..., :field_bits].reshape(tiles, nrec, nf * field_bits)
    if rec.bits % 8 == 0:
        recs = np.packbits(bits, axis=-1, bitorder="little")
        return _place_records(recs, rec, wb // 8)
    # Records that are not whole bytes: place them at bit level inside each word.
    if rec.per_word:
        words = _cdiv(nrec, rec.per_word)
        padded = np.zeros((tiles, words * rec.per_word, rec.bits), np.uint8)
        padded[:, :nrec] = bits
        wbits = np.zeros((tiles, words, wb), np.uint8)
        wbits[:, :, :rec.per_word * rec.bits] = padded.reshape(tiles, words, rec.per_word * rec.bits)
    else:
        wbits = np.zeros((tiles, nrec, rec.words_per_record * wb), np.uint8)
        wbits[:, :, :rec.bits] = bits
    return np.packbits(wbits.reshape(tiles, -1), axis=-1, bitorder="little").reshape(-1)


def _place_records(recs: np.ndarray, rec: Records, word_bytes: int) -> np.ndarray:
    """[tiles, nrec, record bytes] -> words (bytes), per the packing rule."""
    tiles, nrec, rbytes = recs.shape
    if rec.per_word:
        words = _cdiv(nrec, rec.per_word)
        padded = np.zeros((tiles, words * rec.per_word, rbytes), np.uint8)
        padded[:, :nrec] = recs
        out = np.zeros((tiles, words, word_bytes), np.uint8)
        out[:, :, :rec.per_word * rbytes] = padded.reshape(tiles, words, rec.per_word * rbytes)
    else:
        out = np.zeros((tiles, nrec, rec.words_per_record * word_bytes), np.uint8)
        out[:, :, :rbytes] = recs
    return out.reshape(-1)


def _take_records(buf: np.ndarray, tiles: int, nrec: int, rec: Records, word_bytes: int) -> np.ndarray:
    """[tiles, nrec, record bytes] of whole-byte records out of a buffer (inverse of _place_records)."""
    tile_bytes = rec.words(nrec) * word_bytes
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    if buf.size < tiles * tile_bytes:
        raise AbiError(f"buffer of {buf.size} bytes is shorter than the {tiles * tile_bytes} bytes of its layout")
    t = buf[:tiles * tile_bytes].reshape(tiles, tile_bytes)
    rbytes = rec.bits // 8
    if rec.per_word:
        words = rec.words(nrec)
        return t.reshape(tiles, words, word_bytes)[:, :, :rec.per_word * rbytes] \
            .reshape(tiles, words * rec.per_word, rbytes)[:, :nrec]
    return t.reshape(tiles, nrec, rec.words_per_record * word_bytes)[:, :, :rbytes]


def _bytes_to_records(buf: np.ndarray, tiles: int, nrec: int, nf: int, field_bits: int, rec: Records) -> np.ndarray:
    """Inverse of :func:`_records_to_bytes`: the unsigned fields [tiles, nrec, nf] (in the narrowest container)."""
    wb = rec.word_bits // 8
    tile_bytes = rec.words(nrec) * wb
    need = tiles * tile_bytes
    buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
    if buf.size < need:
        raise AbiError(f"buffer of {buf.size} bytes is shorter than the {need} bytes of its layout")
    t = buf[:need].reshape(tiles, tile_bytes)
    if rec.per_word:
        words = rec.words(nrec)
        w = t.reshape(tiles, words, wb)
        if rec.bits % 8 == 0:
            r = w[:, :, :rec.per_word * rec.bits // 8].reshape(tiles, words * rec.per_word, rec.bits // 8)[:, :nrec]
            bits = None
        else:
            wbits = np.unpackbits(w, axis=-1, bitorder="little")[:, :, :rec.per_word * rec.bits]
            bits = wbits.reshape(tiles, words * rec.per_word, rec.bits)[:, :nrec]
            r = None
    else:
        w = t.reshape(tiles, nrec, rec.words_per_record * wb)
        if rec.bits % 8 == 0:
            r, bits = w[:, :, :rec.bits // 8], None
        else:
            bits, r = np.unpackbits(w, axis=-1, bitorder="little")[:, :, :rec.bits], None
    if field_bits in (8, 16, 32, 64) and r is not None:
        fb = field_bits // 8
        return np.ascontiguousarray(r).view(f"<u{fb}").reshape(tiles, nrec, nf)
    if r is not None and field_bits <= 25:
        return _gather_fields(r, nf, field_bits)
    if bits is None:
        bits = np.unpackbits(np.ascontiguousarray(r), axis=-1, bitorder="little")
    bits = bits[:, :, :nf * field_bits].reshape(tiles, nrec, nf, field_bits)
    dt = np.dtype(f"u{_container_bytes(field_bits)}")    # sum the weighted bits in the narrowest container
    return (bits.astype(dt) << np.arange(field_bits, dtype=dt)).sum(axis=-1, dtype=dt)


def _gather_fields(r: np.ndarray, nf: int, field_bits: int) -> np.ndarray:
    """The ``nf`` little-endian ``field_bits``-wide fields of whole-byte records ``r`` [tiles, nrec, bytes]:
    each field read from the (at most 4) bytes it touches, shifted and masked, instead of np.unpackbits
    (one byte per bit) and a weighted sum: unpack_compressed of a 512 x 4608 sat_2x8 copy (3-bit indices)
    17.3 -> 5.9 ms CPU (docs/HOSTPY.md)."""
    start = np.arange(nf) * field_bits
    first, shift = start // 8, (start % 8).astype(np.uint32)
    span = (field_bits + 7 + 7) // 8                       # bytes a field can touch (field_bits <= 25: <= 4)
    r = np.asarray(r)
    padded = np.zeros(r.shape[:-1] + (r.shape[-1] + span,), np.uint8)
    padded[..., :r.shape[-1]] = r                          # reads past the record's last byte see zeros
    acc = np.zeros(r.shape[:-1] + (nf,), np.uint32)
    for b in range(span):
        acc |= padded[..., first + b].astype(np.uint32) << np.uint32(8 * b)
    dt = np.dtype(f"u{_container_bytes(field_bits)}")
    return ((acc >> shift) & np.uint32((1 << field_bits) - 1)).astype(dt)


def _signed(fields: np.ndarray, bits: int, dtype: np.dtype) -> np.ndarray:
    if fields.dtype.itemsize * 8 == bits:         # one container per field: reinterpret as signed
        return np.ascontiguousarray(fields).view(f"i{fields.dtype.itemsize}").astype(dtype, copy=False)
    if bits == 64:
        return np.ascontiguousarray(fields.astype(np.uint64)).view(np.int64).astype(dtype)
    f = fields.astype(np.int64)
    return np.where(f >= (1 << (bits - 1)), f - (1 << bits), f).astype(dtype)


# ---- the ABI of one architecture --------------------------------------------------------------

class Abi:
    """Memory ABI v2 of one architecture (see the module docstring)."""

    version = ABI_VERSION

    def __init__(self, spec: ArchSpec):
        self.spec = spec
        s = spec
        self.word_bits = s.axi_bits
        self.word_bytes = s.axi_bits // 8
        self.data_dtype = np.dtype(f"int{s.mem_data_bits}")
        self.acc_dtype = np.dtype(f"int{s.mem_acc_bits}")

    # -- record shapes --
    def grouped_records(self, tile: int) -> Records:
        return Records(tile * self.spec.m * self.spec.mem_data_bits, self.word_bits)

    def value_records(self, tile: int) -> Records:
        return Records(tile * self.spec.n * self.spec.mem_data_bits, self.word_bits)

    def index_records(self, tile: int) -> Records:
        return Records(tile * self.spec.n * self.spec.idx_bits, self.word_bits)

    @property
    def result_tile_words(self) -> int:
        s = self.spec
        return _cdiv(s.rows * s.cols * s.mem_acc_bits, self.word_bits)

    def subrecords(self, n: int | None = None) -> int:
        """Records per group of a compressed operand whose job keeps ``n`` per group."""
        return _cdiv(self._n(n), self.spec.n)

    def _n(self, n: int | None) -> int:
        n = self.spec.n if n is None else int(n)
        if not 1 <= n <= self.spec.m:
            raise AbiError(f"n must be in [1, M={self.spec.m}], got {n}")
        return n

    # -- region sizes in bytes --
    def grouped_bytes(self, lanes: int, length: int, tile: int) -> int:
        g = _cdiv(length, self.spec.m)
        return _cdiv(lanes, tile) * self.grouped_records(tile).words(g) * self.word_bytes

    def compressed_bytes(self, lanes: int, length: int, tile: int, n: int | None = None) -> tuple[int, int]:
        """(value bytes, index bytes) of a compressed operand of ``lanes`` lanes of ``length``."""
        recs = _cdiv(length, self.spec.m) * self.subrecords(n)
        tiles = _cdiv(lanes, tile)
        return (tiles * self.value_records(tile).words(recs) * self.word_bytes,
                tiles * self.index_records(tile).words(recs) * self.word_bytes)

    def result_bytes(self, rows: int, cols: int) -> int:
        s = self.spec
        return _cdiv(rows, s.rows) * _cdiv(cols, s.cols) * self.result_tile_words * self.word_bytes

    def call_bytes(self, mode: str, rows: int, k: int, cols: int, n: int | None = None) -> dict[str, int]:
        """Bytes of every buffer a kernel call of ``mode`` reads or writes, by argument name."""
        s = self.spec
        if mode == "DENSE":
            return {"a_val": self.grouped_bytes(rows, k, s.rows), "b": self.grouped_bytes(cols, k, s.cols),
                    "c": self.result_bytes(rows, cols)}
        if mode == "SPARSE":
            v, i = self.compressed_bytes(rows, k, s.rows, n)
            return {"a_val": v, "a_idx": i, "b": self.grouped_bytes(cols, k, s.cols), "c": self.result_bytes(rows, cols)}
        if mode == "PRUNE":
            fv, fi = self.compressed_bytes(rows, k, s.rows, n)
            bv, bi = self.compressed_bytes(k, rows, s.rows, n)
            return {"a_val": self.grouped_bytes(rows, k, s.rows), "ff_val": fv, "ff_idx": fi, "bp_val": bv, "bp_idx": bi}
        raise AbiError(f"unknown mode {mode!r}")

    # -- grouped (dense operands) --
    def pack_grouped(self, x: np.ndarray, tile: int) -> np.ndarray:
        """Dense X[lanes][len] -> bytes of the grouped layout (lane tiles of ``tile``)."""
        s = self.spec
        x = np.asarray(x)
        if x.ndim != 2:
            raise AbiError(f"grouped layout needs a 2-D matrix, got shape {x.shape}")
        lanes, length = x.shape
        tiles, g = _cdiv(lanes, tile), _cdiv(length, s.m)
        # Fields are whole containers: stay in the container dtype (bytes, little-endian) throughout.
        pad = np.zeros((tiles * tile, g * s.m), self.data_dtype.newbyteorder("<"))
        pad[:lanes, :length] = x
        recs = pad.reshape(tiles, tile, g, s.m).transpose(0, 2, 1, 3).reshape(tiles, g, -1).view(np.uint8)
        return _place_records(recs, self.grouped_records(tile), self.word_bytes)

    def grouped_records_view(self, lanes: int, length: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
        """(zeroed buffer, writable view [tiles, C-lane tile, G, M] of its fields) when records fill whole words.

        Only for layouts whose records tile the words exactly (record = word or a divisor/multiple of it),
        where the buffer *is* the records back to back; None otherwise.
        """
        s = self.spec
        rec = self.grouped_records(tile)
        exact = rec.bits % self.word_bits == 0 if rec.per_word == 0 else self.word_bits % rec.bits == 0
        tiles, g = _cdiv(lanes, tile), _cdiv(length, s.m)
        if not exact or (rec.per_word > 1 and g % rec.per_word):
            return None
        buf = np.zeros(self.grouped_bytes(lanes, length, tile), np.uint8)
        fields = buf.view(self.data_dtype.newbyteorder("<")).reshape(tiles, g, tile, s.m)
        return buf, fields.transpose(0, 2, 1, 3)

    def unpack_grouped(self, buf: np.ndarray, lanes: int, length: int, tile: int) -> np.ndarray:
        s = self.spec
        tiles, g = _cdiv(lanes, tile), _cdiv(length, s.m)
        rec = self.grouped_records(tile)
        recs = _take_records(buf, tiles, g, rec, self.word_bytes)
        x = np.ascontiguousarray(recs).view(self.data_dtype.newbyteorder("<")).reshape(tiles, g, tile, s.m)
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(tiles * tile, g * s.m)[:lanes, :length],
                                    dtype=self.data_dtype)

    # -- compressed (N:M operands) --
    def pack_compressed(self, values: np.ndarray, indices: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
        """values/indices [L][G][n] -> (value bytes, index bytes) of the compressed layout."""
        s = self.spec
        values, indices = np.asarray(values), np.asarray(indices)
        if values.ndim != 3 or values.shape != indices.shape:
            raise AbiError(f"compressed layout needs values and indices of one shape [L, G, n], got "
                           f"{values.shape} and {indices.shape}")
        lanes, g, n = values.shape
        sub = self.subrecords(n)
        tiles = _cdiv(lanes, tile)
        v = np.zeros((tiles * tile, g, sub * s.n), self.data_dtype)     # container dtypes: no int64 copies
        i = np.zeros((tiles * tile, g, sub * s.n), np.uint8)
        v[:lanes, :, :n] = values
        i[:lanes, :, :n] = indices
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= s.m):
            raise AbiError(f"in-group index out of range [0, {s.m})")

        def order(a):   # [tiles*T, G, sub*n_hw] -> [tiles, G*sub, T*n_hw]
            return a.reshape(tiles, tile, g, sub, s.n).transpose(0, 2, 3, 1, 4).reshape(tiles, g * sub, tile * s.n)
        return (_records_to_bytes(_to_fields(order(v), s.mem_data_bits), s.mem_data_bits, self.value_records(tile)),
                _records_to_bytes(_to_fields(order(i), s.idx_bits), s.idx_bits, self.index_records(tile)))

    def unpack_compressed(self, vbuf: np.ndarray, ibuf: np.ndarray, lanes: int, length: int, tile: int,
                          n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of :func:`pack_compressed`: (values [L][G][n], indices [L][G][n] uint8)."""
        s = self.spec
        n = self._n(n)
        sub, g, tiles = self.subrecords(n), _cdiv(length, s.m), _cdiv(lanes, tile)

        def unorder(f):
            return f.reshape(tiles, g, sub, tile, s.n).transpose(0, 3, 1, 2, 4).reshape(tiles * tile, g, sub * s.n)[:lanes, :, :n]
        v = _bytes_to_records(vbuf, tiles, g * sub, tile * s.n, s.mem_data_bits, self.value_records(tile))
        i = _bytes_to_records(ibuf, tiles, g * sub, tile * s.n, s.idx_bits, self.index_records(tile))
        return (np.ascontiguousarray(unorder(_signed(v, s.mem_data_bits, self.data_dtype))),
                np.ascontiguousarray(unorder(i).astype(np.uint8)))

    # -- results --
    def pack_result(self, c: np.ndarray) -> np.ndarray:
        s = self.spec
        c = np.asarray(c)
        rows, cols = c.shape
        rt, ct = _cdiv(rows, s.rows), _cdiv(cols, s.cols)
        pad = np.zeros((rt * s.rows, ct * s.cols), np.int64)
        pad[:rows, :cols] = c
        f = _to_fields(pad.reshape(rt, s.rows, ct, s.cols).transpose(0, 2, 1, 3).reshape(rt * ct, 1, s.rows * s.cols),
                       s.mem_acc_bits)
        # One record per tile: every tile starts on a word and is padded to whole words.
        return _records_to_bytes(f, s.mem_acc_bits, Records(s.rows * s.cols * s.mem_acc_bits, self.word_bits))

    def unpack_result(self, buf: np.ndarray, rows: int, cols: int) -> np.ndarray:
        s = self.spec
        rt, ct = _cdiv(rows, s.rows), _cdiv(cols, s.cols)
        nb = rt * ct * self.result_tile_words * self.word_bytes
        buf = np.asarray(buf, dtype=np.uint8).reshape(-1)
        if buf.size < nb:
            raise AbiError(f"result buffer of {buf.size} bytes is shorter than the {nb} bytes of its layout")
        t = buf[:nb].reshape(rt * ct, self.result_tile_words * self.word_bytes)[:, :s.rows * s.cols * s.mem_acc_bits // 8]
        x = np.ascontiguousarray(t).view(f"<i{s.mem_acc_bits // 8}").reshape(rt, ct, s.rows, s.cols)
        return np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(rt * s.rows, ct * s.cols)[:rows, :cols]).astype(self.acc_dtype)

    def describe(self) -> dict:
        """The ABI's parameters as written to regmap.json (host and kernels derive layouts from them)."""
        s = self.spec
        d = {"version": ABI_VERSION, "word_bits": self.word_bits, "word_bytes": self.word_bytes,
             "a_tile": s.rows, "b_tile": s.cols, "group": s.m,
             "grouped_record_bits": {"a": self.grouped_records(s.rows).bits, "b": self.grouped_records(s.cols).bits},
             "result_tile_words": self.result_tile_words}
        if s.sparse:
            d["value_record_bits"] = self.value_records(s.rows).bits
            d["index_record_bits"] = self.index_records(s.rows).bits
            d["compressed_density"] = round(self.compressed_density(), 4)
        return d

    def compressed_density(self) -> float:
        """Information bits over occupied bits of a long compressed operand (values + indices)."""
        v, i = self.value_records(self.spec.rows), self.index_records(self.spec.rows)
        per_rec = v.bits + i.bits
        occupied = (v.word_bits / v.per_word if v.per_word else v.words_per_record * v.word_bits) + \
                   (i.word_bits / i.per_word if i.per_word else i.words_per_record * i.word_bits)
        return per_rec / occupied
