"""Kernel arguments and the s_axilite register map, derived from the spec.

The HLS top function's argument list (hls_templates/hls/sat_kernel.cpp.j2), the generated
regmap.json and every host backend come from :func:`kernel_args` / :func:`regmap`, so an offset is
never typed by hand anywhere.

Offsets follow the Vitis HLS ``ap_ctrl_hs`` + ``s_axilite`` layout: 0x00 control (bit 0 ap_start,
1 ap_done, 2 ap_idle, 3 ap_ready), 0x04 global interrupt enable, 0x08 IP interrupt enable,
0x0c IP interrupt status, arguments from 0x10 in declaration order; a 64-bit pointer takes
0x0c bytes (low word, high word, reserved), a 32-bit scalar 0x08 (value, reserved), a 32-bit
output scalar 0x08 (value, then its ``ap_vld`` flag in bit 0 of the next word, clear on read).

Pointers carry whole AXI words (``word_t`` = ``ap_uint<axi_bits>``); what the words hold is the
memory ABI (hostpy/abi.py, docs/FORMAT.md), whose version is ``ABI_VERSION``. Every job ends by
writing ``status``: 0, or the OR of the ``STATUS_BITS`` that made the kernel refuse the job (it
then touches no memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hostpy.abi import ABI_VERSION, Abi

from .spec import BOARDS, ArchSpec

__all__ = ["KernelArg", "kernel_args", "regmap", "MODES", "PASS_MODES", "REGMAP_VERSION", "ABI_VERSION", "KERNEL_NAME",
           "KERNEL_VLNV", "STATUS_BITS", "memory_bank", "pointer_banks"]

REGMAP_VERSION = 2
KERNEL_NAME = "sat_kernel"
# IP identity of the exported kernel (Vitis HLS export_design defaults, passed explicitly in hls.tcl);
# the PYNQ driver finds the kernel in an overlay by it.
KERNEL_VLNV = {"vendor": "xilinx.com", "library": "hls", "name": KERNEL_NAME, "version": "1.0"}

# Operating modes of the kernel (value of the `mode` argument).
MODES = {"SPARSE": 0, "DENSE": 1, "PRUNE": 2}
# Which mode each training pass uses on a sparse architecture.
PASS_MODES = {"FF": "SPARSE", "BP": "SPARSE", "WU": "DENSE", "PRUNE": "PRUNE"}

CTRL_BITS = {"ap_start": 0, "ap_done": 1, "ap_idle": 2, "ap_ready": 3, "auto_restart": 7}

# Why a job was refused (bits of the `status` output register; 0 = ran).
STATUS_BITS = {
    "bad_mode": 0,       # mode not one of this kernel's `modes`
    "bad_size": 1,       # rows, k or cols zero or above the limits (cols ignored by PRUNE)
    "misaligned": 2,     # a pointer the mode uses is not a multiple of the AXI word size
    "bad_n": 3,          # n (kept per group) not supported by this kernel (runtime N: see `nm`)
}


@dataclass(frozen=True)
class KernelArg:
    name: str
    kind: str          # "ptr", "scalar" (input) or "scalar_out" (output, with an ap_vld flag)
    ctype: str         # element type of the pointer (word_t: one AXI word) / type of the scalar, in C
    direction: str     # "in" / "out"
    bundle: str        # m_axi bundle (pointers) or "" (scalars)
    doc: str

    @property
    def bytes_in_regmap(self) -> int:
        return 0x0C if self.kind == "ptr" else 0x08     # scalar: value + reserved; scalar_out: value + ap_vld

    @property
    def width(self) -> int:
        return 64 if self.kind == "ptr" else 32


def kernel_args(spec: ArchSpec) -> list[KernelArg]:
    """The kernel's arguments in declaration order (the dense baseline has no sparse/prune ports).

    Every pointer is an array of AXI words in the memory ABI v2 layout named in its doc
    (hostpy/abi.py); each has its own m_axi bundle so concurrent streams never share a master.
    """
    w = "word_t"
    args = [
        KernelArg("a_val", "ptr", w, "in", "gmem0",
                  "A operand: DENSE grouped(A, R); SPARSE compressed values (T = R); PRUNE grouped(W, R)"),
    ]
    if spec.sparse:
        args.append(KernelArg("a_idx", "ptr", w, "in", "gmem1", "SPARSE: A's compressed index records (T = R)"))
    args += [
        KernelArg("b", "ptr", w, "in", "gmem2", "B operand: grouped(B^T, C), i.e. B[k][cols] by column tiles (SPARSE, DENSE)"),
        KernelArg("c", "ptr", w, "out", "gmem3", "result C: R x C tiles (SPARSE, DENSE)"),
    ]
    if spec.sparse:
        args += [
            KernelArg("ff_val", "ptr", w, "out", "gmem4", "PRUNE: FF copy values, compressed(W along k, T = R)"),
            KernelArg("ff_idx", "ptr", w, "out", "gmem5", "PRUNE: FF copy index records"),
            KernelArg("bp_val", "ptr", w, "out", "gmem6", "PRUNE: BP copy values, compressed(W^T along rows, T = R)"),
            KernelArg("bp_idx", "ptr", w, "out", "gmem7", "PRUNE: BP copy index records"),
        ]
    args += [
        KernelArg("mode", "scalar", "uint32_t", "in", "", "operating mode, see `modes`"),
        KernelArg("rows", "scalar", "uint32_t", "in", "", "rows of A and C (PRUNE: rows of W, i.e. Cout)"),
        KernelArg("k", "scalar", "uint32_t", "in", "", "reduction length (PRUNE: columns of W, i.e. Cin)"),
        KernelArg("cols", "scalar", "uint32_t", "in", "", "columns of B and C (ignored by PRUNE)"),
        KernelArg("n", "scalar", "uint32_t", "in", "", "kept weights per M-group of this job (SPARSE, PRUNE); "
                  "see nm.runtime_n for the values this kernel accepts"),
        KernelArg("status", "scalar_out", "uint32_t", "out", "", "0 when the job ran, else the OR of `status_bits`"),
    ]
    return args


def memory_bank(spec: ArchSpec, bundle: str) -> int:
    """Memory bank (DDR channel / HP port index) of an m_axi bundle, round robin over the board's banks.

    The order puts the three GEMM streams and the result on four different banks where the board
    has four, and spreads PRUNE's four outputs over the banks its input does not use.
    """
    order = {"gmem0": 0, "gmem1": 1, "gmem2": 2, "gmem3": 3, "gmem4": 1, "gmem5": 3, "gmem6": 2, "gmem7": 3}
    return order[bundle] % len(BOARDS[spec.board]["banks"])


def pointer_banks(spec: ArchSpec) -> dict[str, int]:
    """Argument name -> bank index, for every pointer argument."""
    return {a.name: memory_bank(spec, a.bundle) for a in kernel_args(spec) if a.kind == "ptr"}


def _rtl_prune_shape(spec: ArchSpec) -> str | None:
    from .render import rtl_prune_shape     # (render imports this module)
    return rtl_prune_shape(spec) if spec.sparse else None


def regmap(spec: ArchSpec) -> dict[str, Any]:
    """The machine-readable register map written to regmap.json."""
    offset = 0x10
    regs = []
    banks = BOARDS[spec.board]["banks"]
    for a in kernel_args(spec):
        reg = {"name": a.name, "offset": offset, "width": a.width, "kind": a.kind, "ctype": a.ctype,
               "direction": a.direction, "bundle": a.bundle, "doc": a.doc}
        if a.kind == "ptr":
            b = memory_bank(spec, a.bundle)
            reg.update(bank=b, memory=banks[b])
        if a.kind == "scalar_out":
            reg["vld_offset"] = offset + 4
        regs.append(reg)
        offset += a.bytes_in_regmap
    modes = {k: v for k, v in MODES.items() if spec.sparse or k == "DENSE"}
    passes = {p: m for p, m in PASS_MODES.items() if m in modes} if spec.sparse else \
        {"FF": "DENSE", "BP": "DENSE", "WU": "DENSE"}
    return {
        "regmap_version": REGMAP_VERSION,
        "kernel": KERNEL_NAME,
        "vlnv": ":".join(KERNEL_VLNV[k] for k in ("vendor", "library", "name", "version")),
        "arch": spec.name,
        "control": {"offset": 0x00, "bits": dict(CTRL_BITS)},
        "gie": {"offset": 0x04},
        "ier": {"offset": 0x08},
        "isr": {"offset": 0x0C},
        "args": regs,
        # Size of the s_axilite address space as Vitis means it (kernel.xml `range`, the HLS control
        # adapter's 2**ADDR_WIDTH): the smallest power of two covering every register. `registers_end`
        # is the first byte past the last register.
        "address_range": 1 << max(offset - 1, 1).bit_length(),
        "registers_end": offset,
        "modes": modes,
        "passes": passes,
        "operand": {"data_bits": spec.data_bits, "mem_data_bits": spec.mem_data_bits,
                    "acc_bits": spec.acc_bits, "mem_acc_bits": spec.mem_acc_bits,
                    "overflow": "wrap"},
        "nm": {"n": spec.n, "m": spec.m, "idx_bits": spec.idx_bits, "sparse": spec.sparse,
               "tie_rule": "larger magnitude first, then lower in-group index; |int| exact (one extra bit)",
               "pad_policy": "last group of a length not divisible by M is zero-padded",
               # values of the `n` register the kernel runs (others end the job with status bad_n):
               # runtime N, every n below M (n = M is DENSE mode)
               "runtime_n": list(range(1, spec.m)) if spec.sparse else []},
        "limits": {"max_k": spec.max_k, "max_dim": spec.max_dim},
        # The RTL kernel (IMPL=rtl) runs PRUNE only for the BP transpose shapes of
        # hls_templates/rtl/_sat_layout.j2 (docs/RTL.md "PRUNE"); null: it refuses PRUNE with bad_mode.
        "rtl_prune_shape": _rtl_prune_shape(spec),
        "status_bits": dict(STATUS_BITS),
        "abi": Abi(spec).describe(),
    }
