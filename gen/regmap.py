"""Kernel arguments and the s_axilite register map, derived from the spec.

The HLS top function's argument list (hls_templates/hls/sat_kernel.cpp.j2), the generated
regmap.json and every host backend come from :func:`kernel_args` / :func:`regmap`, so an offset is
never typed by hand anywhere.

Offsets follow the Vitis HLS ``ap_ctrl_hs`` + ``s_axilite`` layout: 0x00 control (bit 0 ap_start,
1 ap_done, 2 ap_idle, 3 ap_ready), 0x04 global interrupt enable, 0x08 IP interrupt enable,
0x0c IP interrupt status, arguments from 0x10 in declaration order; a 64-bit pointer takes
0x0c bytes (low word, high word, reserved), a 32-bit scalar 0x08 (value, reserved).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .spec import ArchSpec

__all__ = ["KernelArg", "kernel_args", "regmap", "MODES", "PASS_MODES", "REGMAP_VERSION", "KERNEL_NAME", "KERNEL_VLNV"]

REGMAP_VERSION = 1
KERNEL_NAME = "sat_kernel"
# IP identity of the exported kernel (Vitis HLS export_design defaults, passed explicitly in hls.tcl);
# the PYNQ driver finds the kernel in an overlay by it.
KERNEL_VLNV = {"vendor": "xilinx.com", "library": "hls", "name": KERNEL_NAME, "version": "1.0"}

# Operating modes of the kernel (value of the `mode` argument).
MODES = {"SPARSE": 0, "DENSE": 1, "PRUNE": 2}
# Which mode each training pass uses on a sparse architecture.
PASS_MODES = {"FF": "SPARSE", "BP": "SPARSE", "WU": "DENSE", "PRUNE": "PRUNE"}

CTRL_BITS = {"ap_start": 0, "ap_done": 1, "ap_idle": 2, "ap_ready": 3, "auto_restart": 7}


@dataclass(frozen=True)
class KernelArg:
    name: str
    kind: str          # "ptr" or "scalar"
    ctype: str         # element type of the pointer / type of the scalar, in C
    direction: str     # "in" / "out"
    bundle: str        # m_axi bundle (pointers) or "" (scalars)
    doc: str

    @property
    def bytes_in_regmap(self) -> int:
        return 0x0C if self.kind == "ptr" else 0x08

    @property
    def width(self) -> int:
        return 64 if self.kind == "ptr" else 32


def _data_ctype(spec: ArchSpec) -> str:
    return f"int{spec.mem_data_bits}_t"


def _acc_ctype(spec: ArchSpec) -> str:
    return f"int{spec.mem_acc_bits}_t"


def kernel_args(spec: ArchSpec) -> list[KernelArg]:
    """The kernel's arguments in declaration order (the dense baseline has no sparse/prune ports)."""
    d, acc = _data_ctype(spec), _acc_ctype(spec)
    args = [
        KernelArg("a_val", "ptr", d, "in", "gmem0",
                  "A operand: DENSE A[rows][k]; SPARSE compressed values [rows][ceil(k/M)][N]; PRUNE dense W[rows][k]"),
    ]
    if spec.sparse:
        args.append(KernelArg("a_idx", "ptr", "uint8_t", "in", "gmem1",
                              "SPARSE: A's packed in-group indices (LSB-first bitstream, ceil(log2 M) bits each)"))
    args += [
        KernelArg("b", "ptr", d, "in", "gmem2", "B operand B[k][cols] (SPARSE, DENSE)"),
        KernelArg("c", "ptr", acc, "out", "gmem3", "result C[rows][cols] (SPARSE, DENSE)"),
    ]
    if spec.sparse:
        args += [
            KernelArg("ff_val", "ptr", d, "out", "gmem4", "PRUNE: FF copy values [rows][ceil(k/M)][N] (groups along k)"),
            KernelArg("ff_idx", "ptr", "uint8_t", "out", "gmem5", "PRUNE: FF copy packed indices"),
            KernelArg("bp_val", "ptr", d, "out", "gmem6", "PRUNE: BP copy values [k][ceil(rows/M)][N] (groups along rows)"),
            KernelArg("bp_idx", "ptr", "uint8_t", "out", "gmem7", "PRUNE: BP copy packed indices"),
        ]
    args += [
        KernelArg("mode", "scalar", "uint32_t", "in", "", "operating mode, see `modes`"),
        KernelArg("rows", "scalar", "uint32_t", "in", "", "rows of A and C (PRUNE: rows of W, i.e. Cout)"),
        KernelArg("k", "scalar", "uint32_t", "in", "", "reduction length (PRUNE: columns of W, i.e. Cin)"),
        KernelArg("cols", "scalar", "uint32_t", "in", "", "columns of B and C"),
    ]
    return args


def regmap(spec: ArchSpec) -> dict[str, Any]:
    """The machine-readable register map written to regmap.json."""
    offset = 0x10
    regs = []
    for a in kernel_args(spec):
        regs.append({"name": a.name, "offset": offset, "width": a.width, "kind": a.kind, "ctype": a.ctype,
                     "direction": a.direction, "bundle": a.bundle, "doc": a.doc})
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
        "address_range": offset,
        "modes": modes,
        "passes": passes,
        "operand": {"data_bits": spec.data_bits, "mem_data_bits": spec.mem_data_bits,
                    "acc_bits": spec.acc_bits, "mem_acc_bits": spec.mem_acc_bits,
                    "overflow": "wrap"},
        "nm": {"n": spec.n, "m": spec.m, "idx_bits": spec.idx_bits, "sparse": spec.sparse,
               "tie_rule": "larger magnitude first, then lower in-group index; |int| exact (one extra bit)",
               "pad_policy": "last group of a length not divisible by M is zero-padded"},
        "limits": {"max_k": spec.max_k, "max_dim": spec.max_dim},
    }
