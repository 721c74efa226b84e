"""Which BP-transpose shape the RTL kernel's PRUNE uses for a spec: the one Python statement of it.

The RTL kernel (docs/RTL.md "PRUNE") transposes W's grouped records (R rows x M positions, R = C)
into the BP copy's beats by one of a few shapes, chosen from the spec by the template partial
hls_templates/rtl/_sat_layout.j2 (``K_BPX``, ``K_BPQ``):

* ``"eq"``   M = R and a record is whole AXI words: BP beat = one record, transposed by wiring.
* ``"wide"`` R = q x M and an R x R block of W is exactly one AXI word (and a word holds whole
  records): one word feeds q BP beats.
* ``"tall"`` M = q x R and a record is whole AXI words: a BP beat gathers q records (one per row
  tile), each record of W read q times in the BP pass.

Any other sparse spec (e.g. rows != cols) has a kernel that refuses PRUNE with status bad_mode; the
dense baseline has no PRUNE. tests/test_prune_layout.py checks this function against the shape the
rendered RTL states, for every preset and some custom specs, so the two cannot drift apart
unnoticed. The performance model (gen/perf.py prune_call) takes the shape from here.
"""
from __future__ import annotations

from dataclasses import dataclass

from hostpy.abi import Abi

from .spec import ArchSpec

__all__ = ["PruneShape", "prune_bp_shape", "prune_shape", "prune_refusal", "SHAPES"]

SHAPES = ("eq", "wide", "tall")


@dataclass(frozen=True)
class PruneShape:
    """The RTL kernel's PRUNE layout of one spec.

    shape: "eq", "wide" or "tall" (module docstring); q: R / M ("wide"), M / R ("tall"), 1 ("eq");
    wpr: AXI words per grouped record of W (R x M values; hostpy.abi Records.words_per_record,
    1 when several records share a word).
    """

    shape: str
    q: int
    wpr: int


def prune_bp_shape(spec: ArchSpec) -> tuple[str, int] | None:
    """(shape, q) of the RTL kernel's PRUNE BP transpose for ``spec``, or None where the kernel refuses PRUNE."""
    if not spec.sparse or spec.rows != spec.cols:
        return None
    r, m = spec.rows, spec.m
    word = spec.axi_bits
    rec = r * m * spec.mem_data_bits                  # one grouped record of W: R rows x M positions
    if m == r and rec % word == 0:
        return ("eq", 1)
    if r > m and r % m == 0 and r * r * spec.mem_data_bits == word and word % rec == 0:
        return ("wide", r // m)
    if m > r and m % r == 0 and rec % word == 0:
        return ("tall", m // r)
    return None


def prune_refusal(spec: ArchSpec) -> str | None:
    """Why the RTL kernel of ``spec`` refuses PRUNE (None if it runs it)."""
    if not spec.sparse:
        return f"architecture {spec.name!r} is the dense baseline: it has no PRUNE mode"
    if prune_bp_shape(spec) is not None:
        return None
    if spec.rows != spec.cols:
        why = f"rows = {spec.rows} != cols = {spec.cols}"
    else:
        why = (f"R = {spec.rows}, M = {spec.m}, {spec.mem_data_bits}-bit values on {spec.axi_bits}-bit words fit none "
               f"of the BP transpose shapes {', '.join(SHAPES)}")
    return (f"the RTL kernel of {spec.name!r} refuses PRUNE (status bad_mode): its PRUNE needs rows = cols and a BP "
            f"transpose shape of docs/RTL.md \"PRUNE\" ({why})")


def prune_shape(spec: ArchSpec) -> PruneShape | None:
    """The full PRUNE layout (shape, q, words per record) of ``spec``, or None where the kernel refuses PRUNE."""
    sq = prune_bp_shape(spec)
    if sq is None:
        return None
    return PruneShape(sq[0], sq[1], Abi(spec).grouped_records(spec.rows).words_per_record)
