"""The architecture spec: presets, derived figures, loaders, and invalid specs with specific errors."""
from __future__ import annotations

import json
import math

import pytest

from gen.spec import (BOARDS, PRESETS, ArchSpec, SpecError, load_spec, make_spec, preset, required_acc_bits,
                      spec_to_dict, spec_to_json)


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_and_named(name):
    spec = preset(name)
    assert spec.name == name
    assert make_spec(**spec_to_dict(spec)) == spec          # re-validates


def test_required_presets_exist():
    for name in ("sat_2x8", "sat_2x4", "sat_1x4", "sat_4x8", "sat_1x16", "dense"):
        assert name in PRESETS
    dense, s28 = preset("dense"), preset("sat_2x8")
    assert not dense.sparse and s28.sparse
    # The dense baseline has exactly the multipliers of sat_2x8.
    assert dense.macs_per_cycle == s28.macs_per_cycle


@pytest.mark.parametrize("n,m,bits,speedup", [(2, 4, 2, 1.5), (2, 8, 3, 2.0), (1, 4, 2, 2.0), (1, 16, 4, 8 / 3),
                                              (4, 8, 3, 1.5), (1, 8, 3, 2.4), (2, 16, 4, 2.4)])
def test_derived_index_bits_and_ideal_speedup(n, m, bits, speedup):
    spec = make_spec(name="x", n=n, m=m)
    assert spec.idx_bits == bits == math.ceil(math.log2(m))
    assert spec.ideal_step_speedup == pytest.approx(speedup)
    assert spec.ideal_step_speedup == pytest.approx(3 / (2 * n / m + 1))


def test_required_acc_bits_is_tight():
    # int8 x int8: largest product 2^14; K of them must fit a signed accumulator.
    for d, k in [(8, 1), (8, 16384), (16, 16384), (4, 1000), (12, 3)]:
        bits = required_acc_bits(d, k)
        worst = k * (1 << (2 * d - 2))
        assert worst <= (1 << (bits - 1)) - 1
        assert worst > (1 << (bits - 2)) - 1


def test_acc_check_uses_max_k():
    make_spec(name="ok", data_bits=8, acc_bits=32, max_k=131071)
    with pytest.raises(SpecError) as e:
        make_spec(name="bad", data_bits=8, acc_bits=32, max_k=131072)
    assert e.value.field == "acc_bits" and "max_k=131072" in str(e.value)


def test_part_follows_board():
    spec = make_spec(name="k", board="kv260")
    assert spec.fpga_part == BOARDS["kv260"]["part"] and spec.flow == "pynq"
    assert preset("sat_2x8").flow == "xrt"


def test_json_round_trip(tmp_path):
    spec = preset("sat_2x8_int16")
    p = tmp_path / "s.json"
    p.write_text(spec_to_json(spec))
    assert load_spec(p) == spec
    assert spec_to_json(load_spec(p)) == spec_to_json(spec)


def test_toml_with_base(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('base = "sat_2x4"\nname = "mine"\nrows = 16\nclock_mhz = 250\n')
    spec = load_spec(p)
    assert (spec.n, spec.m, spec.rows, spec.cols, spec.clock_mhz, spec.name) == (2, 4, 16, 8, 250.0, "mine")


# ---- invalid specs: each must name its field --------------------------------------------------
BAD_FIELDS = [
    ({"n": 0}, "n"),
    ({"n": -1}, "n"),
    ({"n": 8, "m": 8}, "n"),
    ({"n": 9, "m": 8}, "n"),
    ({"m": 6}, "m"),
    ({"m": 32}, "m"),
    ({"m": 1, "n": 1}, "m"),
    ({"m": 0}, "m"),
    ({"rows": 0}, "rows"),
    ({"rows": -4}, "rows"),
    ({"cols": 0}, "cols"),
    ({"cols": 1000}, "cols"),
    ({"data_bits": 1}, "data_bits"),
    ({"data_bits": 17}, "data_bits"),
    ({"acc_bits": 15}, "acc_bits"),
    ({"acc_bits": 65}, "acc_bits"),
    ({"data_bits": 16, "acc_bits": 40}, "acc_bits"),       # cannot hold max_k int16 products
    ({"acc_bits": 32, "max_k": 1 << 20}, "acc_bits"),
    ({"max_k": 0}, "max_k"),
    ({"max_dim": 0}, "max_dim"),
    ({"wbuf_depth": 0}, "wbuf_depth"),
    ({"abuf_depth": -1}, "abuf_depth"),
    ({"axi_bits": 100}, "axi_bits"),
    ({"axi_bits": 1024}, "axi_bits"),
    ({"clock_mhz": 0}, "clock_mhz"),
    ({"clock_mhz": 5000.0}, "clock_mhz"),
    ({"clock_mhz": float("nan")}, "clock_mhz"),
    ({"board": "vcu9999"}, "board"),
    ({"part": "xc7a35t"}, "part"),
    ({"name": ""}, "name"),
    ({"name": "has space"}, "name"),
    ({"name": "9lives"}, "name"),
    ({"colour": "red"}, "colour"),                         # unknown key
    ({"n": "2"}, "n"),                                      # wrong types
    ({"rows": 8.0}, "rows"),
    ({"sparse": 1}, "sparse"),
    ({"n": True}, "n"),
    ({"clock_mhz": "fast"}, "clock_mhz"),
    ({"board": 7}, "board"),
    ({"name": None}, "name"),
]


@pytest.mark.parametrize("fields,field", BAD_FIELDS, ids=[f"{k}" for k, _ in BAD_FIELDS])
def test_invalid_spec_names_field(fields, field):
    with pytest.raises(SpecError) as e:
        make_spec(**{"name": "t", **fields})
    assert e.value.field == field
    assert f"'{field}'" in str(e.value)


def test_at_least_30_invalid_cases():
    assert len(BAD_FIELDS) >= 30


@pytest.mark.parametrize("content,suffix,needle", [
    ("n = 2\nm = ", ".toml", "cannot parse"),
    ("{", ".json", "cannot parse"),
    ("[1, 2]", ".json", "top level"),
    ("n: 2", ".yaml", "must end in .toml or .json"),
    ('base = "nope"', ".toml", "unknown preset"),
])
def test_bad_spec_files(tmp_path, content, suffix, needle):
    p = tmp_path / f"s{suffix}"
    p.write_text(content)
    with pytest.raises(SpecError) as e:
        load_spec(p)
    assert needle in str(e.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "absent.toml")


def test_unknown_preset():
    with pytest.raises(SpecError, match="unknown architecture 'sat_3x8'"):
        preset("sat_3x8")


def test_spec_is_frozen():
    spec = preset("sat_2x8")
    with pytest.raises(Exception):
        spec.n = 4  # type: ignore[misc]
    assert isinstance(spec, ArchSpec)


def test_spec_json_is_canonical():
    text = spec_to_json(preset("sat_2x8"))
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert text.endswith("\n")
