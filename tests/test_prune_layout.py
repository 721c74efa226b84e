"""gen.prune_layout (Python's view of which BP-transpose shape the RTL kernel's PRUNE uses, read from
hls_templates/rtl/_sat_layout.j2) against the rendered RTL: the shape the sequencer states, whether it
runs PRUNE at all, and q against the partial's K_BPQ (gen.prune_layout derives q per shape itself).

Every preset and a few custom specs (one per shape, refused ones, R != C).
"""
from __future__ import annotations

import re

import pytest

from gen.memmodel import MemoryModel
from gen.perf import PerfError, prune_call, prune_cost, step_cost
from gen.prune_layout import SHAPES, prune_bp_shape, prune_refusal, prune_shape
from gen.regmap import kernel_args, regmap
from gen.render import _environment
from gen.spec import PRESETS, make_spec, preset, spec_to_dict

CUSTOM = {
    "cu_eq_4x4_m4_axi128": dict(rows=4, cols=4, n=2, m=4, axi_bits=128),
    "cu_wide_4x4_m2_axi128": dict(rows=4, cols=4, n=1, m=2, axi_bits=128),
    "cu_tall_8x8_m16_int16": dict(rows=8, cols=8, n=2, m=16, data_bits=16, acc_bits=48),
    "cu_tall_4x4_m16_axi128": dict(rows=4, cols=4, n=2, m=16, axi_bits=128),
    "cu_blocks_8x16_q1": dict(rows=8, cols=16, n=2, m=8),        # C > R, an 8 x 8 block is one word: q = 1
    "cu_blocks_16x16_m8": dict(rows=16, cols=16, n=2, m=8),      # rows = cols, a 16 x 16 block is four words
    "cu_refused_16x8": dict(rows=16, cols=8, n=2, m=8),          # C < R: a record's R groups do not fit C lanes
    "cu_refused_4x4_m8": dict(rows=4, cols=4, n=2, m=8),          # a 4 x 8 record is half a 512-bit word
}


def _spec(name):
    if name in PRESETS:
        return preset(name)
    return make_spec(**{**spec_to_dict(preset("sat_2x8")), "name": name, **CUSTOM[name]})


def _rendered(spec):
    """(shape the rendered sat_seq.sv states or None, whether its 'Modes run' include PRUNE, the partial's K_BPQ)."""
    env = _environment()
    ctx = {"spec": spec, "regmap": regmap(spec), "args": kernel_args(spec), "satgen_version": "test"}
    seq = env.get_template("rtl/sat_seq.sv.j2").render(**ctx)
    m = re.search(r"^// PRUNE \((\w+): docs/RTL\.md", seq, re.M)
    modes = re.search(r"^// Modes run: (.*)$", seq, re.M).group(1)
    layout = env.get_template("rtl/_sat_layout.j2").make_module(ctx)
    return (m.group(1) if m else None), modes.startswith("SPARSE, DENSE, PRUNE"), layout.K_BPQ


@pytest.mark.parametrize("name", sorted(PRESETS) + sorted(CUSTOM))
def test_python_classification_equals_the_rendered_rtl(name):
    spec = _spec(name)
    stated, runs_prune, q = _rendered(spec)
    got = prune_bp_shape(spec)
    assert runs_prune == (got is not None), (name, got)
    assert stated == (got[0] if got else None), (name, got, stated)
    if got is not None:
        assert got[1] == q and got[0] in SHAPES
        assert prune_refusal(spec) is None and prune_shape(spec).shape == got[0]
    else:
        assert prune_refusal(spec) and prune_shape(spec) is None


def test_every_shape_is_covered():
    shapes = {(prune_bp_shape(_spec(n)) or (None,))[0] for n in sorted(PRESETS) + sorted(CUSTOM)}
    assert shapes == set(SHAPES) | {None}


def test_prune_on_a_refusing_kernel_is_a_clear_model_error():
    refused = _spec("cu_refused_16x8")
    for f in (lambda: prune_call(refused, 64, 64), lambda: prune_cost(refused, 64, 64),
              lambda: prune_call(refused, 64, 64, MemoryModel(), n=3)):
        with pytest.raises(PerfError, match=r"refuses PRUNE \(status bad_mode\).*R = 16, C = 8"):
            f()
    with pytest.raises(PerfError, match="fit none of the BP transpose shapes"):
        prune_call(_spec("cu_refused_4x4_m8"), 8, 64)
    with pytest.raises(PerfError, match="dense baseline"):
        prune_call(preset("dense"), 8, 64)
    # A network step on such a kernel still has a figure, marked as an estimate; a kernel that runs
    # PRUNE (sat_2x8, and sat_2x8_vu9p since the "blocks" shape) has none.
    est = step_cost(refused, "resnet18_cifar", bdwp=True, batch=1)
    assert est.prune_estimate and "refuses PRUNE" in est.prune_estimate and "estimated" in est.prune_estimate
    assert sum(layer.prune.cycles for layer in est.layers) > 0
    for name in ("sat_2x8", "sat_2x8_vu9p"):
        assert step_cost(preset(name), "resnet18_cifar", bdwp=True, batch=1).prune_estimate is None
    assert step_cost(refused, "resnet18_cifar", bdwp=False, batch=1).prune_estimate is None