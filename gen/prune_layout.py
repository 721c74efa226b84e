"""Which BP-transpose shape the RTL kernel's PRUNE uses for a spec, for Python (the model, the benches).

The RTL kernel (docs/RTL.md "PRUNE") transposes W's grouped records (R rows x M positions) into the BP
copy's beats by one of a few shapes, decided in ONE place: the template partial
hls_templates/rtl/_sat_layout.j2 (``K_BPX``), read here through ``gen.render.rtl_prune_shape``:

* ``"eq"``     R = C = M and a record is whole AXI words: BP beat = one record, transposed by wiring.
* ``"wide"``   R = C = q x M and an R x R block of W is exactly one AXI word (and a word holds whole
  records): one word feeds q BP beats.
* ``"tall"``   R = C, M = q x R and a record is whole AXI words: a BP beat gathers q records (one per
  row tile), each record of W read q times in the BP pass.
* ``"blocks"`` C >= R = q x M and one M x M block of W is exactly one AXI word (a record is q words):
  a BP beat gathers one word of each of q records (q one-word reads); rows != cols (sat_2x8_vu9p).

Any other sparse spec has a kernel that refuses PRUNE with status bad_mode; the dense baseline has no
PRUNE. tests/test_prune_layout.py checks the q and the refusals against the rendered RTL. The
performance model (gen/perf.py prune_call) takes the shape from here.
"""
from __future__ import annotations

from dataclasses import dataclass

from hostpy.abi import Abi

from .spec import ArchSpec

__all__ = ["PruneShape", "prune_bp_shape", "prune_shape", "prune_refusal", "SHAPES"]

SHAPES = ("eq", "wide", "tall", "blocks")


@dataclass(frozen=True)
class PruneShape:
    """The RTL kernel's PRUNE layout of one spec.

    shape: "eq", "wide", "tall" or "blocks" (module docstring); q: R / M ("wide", "blocks"), M / R ("tall"),
    1 ("eq");
    wpr: AXI words per grouped record of W (R x M values; hostpy.abi Records.words_per_record,
    1 when several records share a word).
    """

    shape: str
    q: int
    wpr: int


def prune_bp_shape(spec: ArchSpec) -> tuple[str, int] | None:
    """(shape, q) of the RTL kernel's PRUNE BP transpose for ``spec``, or None where the kernel refuses PRUNE."""
    from .render import rtl_prune_shape          # the template decides; import here: render imports the spec only
    shape = rtl_prune_shape(spec) if spec.sparse else None
    if shape is None:
        return None
    q = {"eq": 1, "wide": spec.rows // spec.m, "blocks": spec.rows // spec.m, "tall": spec.m // spec.rows}[shape]
    return (shape, q)


def prune_refusal(spec: ArchSpec) -> str | None:
    """Why the RTL kernel of ``spec`` refuses PRUNE (None if it runs it)."""
    if not spec.sparse:
        return f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode"
    if prune_bp_shape(spec) is not None:
        return None
    why = (f"R = {spec.rows}, C = {spec.cols}, M = {spec.m}, {spec.mem_data_bits}-bit values on {spec.axi_bits}-bit "
           f"words fit none of the BP transpose shapes {', '.join(SHAPES)}")
    return (f"the RTL kernel of {spec.name!r} refuses PRUNE (status bad_mode): its PRUNE needs one of the BP "
            f"transpose shapes of docs/RTL.md \"PRUNE\" ({why})")


def prune_shape(spec: ArchSpec) -> PruneShape | None:
    """The full PRUNE layout (shape, q, words per record) of ``spec``, or None where the kernel refuses PRUNE."""
    sq = prune_bp_shape(spec)
    if sq is None:
        return None
    return PruneShape(sq[0], sq[1], Abi(spec).grouped_records(spec.rows).words_per_record)
