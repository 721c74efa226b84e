"""The architecture spec: the one source of truth every generated file is derived from.

A spec is a frozen dataclass. Construct it only through :func:`make_spec` (or the loaders below),
which validate every field and raise :class:`SpecError` naming the offending field.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ArchSpec", "SpecError", "BOARDS", "make_spec", "load_spec", "spec_to_dict", "spec_to_json",
    "PRESETS", "preset", "preset_names",
]


class SpecError(ValueError):
    """An invalid architecture spec. ``field`` names the offending field (or None)."""

    def __init__(self, field: str | None, message: str):
        self.field = field
        super().__init__(f"spec field '{field}': {message}" if field else message)


# Boards we know how to build for: part number and which flow ships the kernel to the board.
#   xrt  -> v++ link into an .xclbin, driven by XRT (Alveo / VCU1525 data-center cards)
#   pynq -> Vivado block design (Zynq PS + kernel) into .bit + .hwh, driven by PYNQ
# banks: the memory channels an m_axi bundle can be mapped to (v++ `sp=` targets on xrt boards, the
# PS high-performance slave ports on pynq boards); gen.regmap.memory_bank spreads bundles over them.
_DDR4 = ("DDR[0]", "DDR[1]", "DDR[2]", "DDR[3]")
_HP_MPSOC = ("S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD")
BOARDS: dict[str, dict] = {
    "vcu1525": {"part": "xcvu9p-fsgd2104-2L-e", "flow": "xrt",
                "platform": "xilinx_vcu1525_xdma_201830_1", "banks": _DDR4},
    "u200": {"part": "xcu200-fsgd2104-2-e", "flow": "xrt", "platform": "xilinx_u200_gen3x16_xdma_2_202110_1",
             "banks": _DDR4},
    "u250": {"part": "xcu250-figd2104-2L-e", "flow": "xrt", "platform": "xilinx_u250_gen3x16_xdma_4_1_202210_1",
             "banks": _DDR4},
    "u280": {"part": "xcu280-fsvh2892-2L-e", "flow": "xrt", "platform": "xilinx_u280_gen3x16_xdma_1_202211_1",
             "banks": ("HBM[0]", "HBM[1]", "HBM[2]", "HBM[3]")},
    "kv260": {"part": "xck26-sfvc784-2LV-c", "flow": "pynq", "platform": "xilinx.com:kv260_som:part0:1.4",
              "banks": _HP_MPSOC},
    "zcu104": {"part": "xczu7ev-ffvc1156-2-e", "flow": "pynq", "platform": "xilinx.com:zcu104:part0:1.1",
               "banks": _HP_MPSOC},
    "zcu102": {"part": "xczu9eg-ffvb1156-2-e", "flow": "pynq", "platform": "xilinx.com:zcu102:part0:3.4",
               "banks": _HP_MPSOC},
    "pynq-z2": {"part": "xc7z020clg400-1", "flow": "pynq", "platform": "tul.com.tw:pynq-z2:part0:1.0",
                "banks": ("S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3")},
}

MAX_M = 16
AXI_WIDTHS = (32, 64, 128, 256, 512)


@dataclass(frozen=True)
class ArchSpec:
    """An N:M sparse-training accelerator (SAT) architecture.

    The PE array is ``rows x cols`` output-stationary PEs with ``n`` multipliers each. In sparse mode
    a PE takes one compressed weight group (n values + n in-group indices) and one activation group
    (m values) per cycle; in dense mode the same n multipliers take n dense weights per cycle.
    ``sparse=False`` is the dense baseline: the same multipliers without the index muxes.
    """

    name: str = "sat_2x8"
    n: int = 2                      # kept weights per group (N of N:M)
    m: int = 8                      # group size (M of N:M), a power of two <= 16
    sparse: bool = True             # False: dense baseline with the same multipliers
    rows: int = 8                   # PE array rows: output rows per tile
    cols: int = 8                   # PE array cols: output columns per tile
    data_bits: int = 8              # signed operand width (weights, activations, gradients)
    acc_bits: int = 32              # signed accumulator width (two's complement, wraps)
    max_k: int = 16384              # largest reduction length a GEMM may have
    max_dim: int = 65536            # largest output rows / cols a GEMM may have
    wbuf_depth: int = 512           # weight buffer words per PE row (word = n weights [+ n indices])
    abuf_depth: int = 512           # activation buffer words per PE column (word = m activations)
    axi_bits: int = 512             # m_axi data width (bits)
    clock_mhz: float = 300.0        # target kernel clock
    board: str = "vcu1525"          # target board (see BOARDS); fixes part and build flow
    part: str = ""                  # FPGA part; empty = the board's part

    # ---- derived quantities (never stored, always computed from the fields above) ----
    @property
    def idx_bits(self) -> int:
        """Bits of one in-group index: ceil(log2 M)."""
        return max(1, math.ceil(math.log2(self.m)))

    @property
    def fpga_part(self) -> str:
        return self.part or BOARDS[self.board]["part"]

    @property
    def flow(self) -> str:
        return BOARDS[self.board]["flow"]

    @property
    def platform(self) -> str:
        return BOARDS[self.board]["platform"]

    @property
    def macs_per_cycle(self) -> int:
        return self.rows * self.cols * self.n

    @property
    def k_chunk_sparse(self) -> int:
        """Reduction elements held on chip per pass in sparse mode."""
        return min(self.wbuf_depth, self.abuf_depth) * self.m

    @property
    def k_chunk_dense(self) -> int:
        """Reduction elements held on chip per pass in dense mode."""
        return min(self.wbuf_depth * self.n, self.abuf_depth * self.m)

    @property
    def mem_data_bits(self) -> int:
        """Container width of one operand in host memory (8 or 16)."""
        return 8 if self.data_bits <= 8 else 16

    @property
    def mem_acc_bits(self) -> int:
        """Container width of one result in host memory (32 or 64)."""
        return 32 if self.acc_bits <= 32 else 64

    @property
    def drain_rows(self) -> int:
        """Output rows the RTL core sends per result beat: the most that fit one m_axi word.

        The largest divisor of ``rows`` whose result beat (drain_rows x cols x mem_acc_bits) is at most
        ``axi_bits`` wide (at least 1): a wider beat could not be stored any faster, a narrower one
        makes short reductions wait for the drain (docs/RTL.md).
        """
        row_bits = self.cols * self.mem_acc_bits
        fits = [d for d in range(2, self.rows + 1) if self.rows % d == 0 and d * row_bits <= self.axi_bits]
        return max(fits, default=1)

    @property
    def ideal_step_speedup(self) -> float:
        """Training-step speedup bound with FF and BP sparse, WU dense: 3 / (2N/M + 1)."""
        return 3.0 / (2.0 * self.n / self.m + 1.0) if self.sparse else 1.0

    @property
    def dsp_per_multiplier(self) -> float:
        """DSP48E2 (27x18) per multiplier as the generated RTL maps it (Yosys: one per multiplier).

        Packing two int8 multipliers into one DSP48E2 is possible but not generated, so it is not
        counted; wider than 18 bits would need a second DSP.
        """
        return 1.0 if self.data_bits <= 18 else 2.0


def required_acc_bits(data_bits: int, max_k: int) -> int:
    """Smallest signed accumulator that holds max_k products of two data_bits operands.

    The largest product magnitude is (-2^(d-1))^2 = 2^(2d-2); the sum of max_k of them must be
    <= 2^(acc-1) - 1.
    """
    worst = max_k * (1 << (2 * data_bits - 2))
    bits = 1
    while (1 << (bits - 1)) - 1 < worst:
        bits += 1
    return bits


_FIELD_TYPES: dict[str, type] = {f.name: f.type for f in fields(ArchSpec)}  # type: ignore[misc]
_TYPES = {"str": str, "int": int, "bool": bool, "float": float}


def _check_type(name: str, value: Any) -> Any:
    want = _TYPES[str(_FIELD_TYPES[name])]
    # bool is an int subclass in Python: reject it explicitly for numeric fields.
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(name, f"must be an integer, got {type(value).__name__} {value!r}")
    elif want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(name, f"must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise SpecError(name, f"must be finite, got {value!r}")
    elif want is bool:
        if not isinstance(value, bool):
            raise SpecError(name, f"must be true or false, got {type(value).__name__} {value!r}")
    elif want is str:
        if not isinstance(value, str):
            raise SpecError(name, f"must be a string, got {type(value).__name__} {value!r}")
    return value


def _positive(spec: ArchSpec, name: str, limit: int | None = None) -> None:
    v = getattr(spec, name)
    if v < 1:
        raise SpecError(name, f"must be >= 1, got {v}")
    if limit is not None and v > limit:
        raise SpecError(name, f"must be <= {limit}, got {v}")


def validate(spec: ArchSpec) -> None:
    """Raise SpecError for the first invalid field of ``spec``."""
    if not spec.name or not all(c.isalnum() or c in "_-" for c in spec.name) or not spec.name[0].isalpha():
        raise SpecError("name", f"must start with a letter and contain only letters, digits, '_' or '-', got {spec.name!r}")
    if spec.m < 2 or spec.m > MAX_M or spec.m & (spec.m - 1):
        raise SpecError("m", f"must be a power of two between 2 and {MAX_M}, got {spec.m}")
    if spec.n < 1:
        raise SpecError("n", f"must be >= 1, got {spec.n}")
    if spec.n >= spec.m:
        raise SpecError("n", f"must be smaller than m (N < M), got n={spec.n}, m={spec.m}")
    _positive(spec, "rows", 256)
    _positive(spec, "cols", 256)
    if not 2 <= spec.data_bits <= 16:
        raise SpecError("data_bits", f"must be between 2 and 16 (int8/int16 containers), got {spec.data_bits}")
    if not 2 * spec.data_bits <= spec.acc_bits <= 64:
        raise SpecError("acc_bits", f"must be between 2*data_bits={2 * spec.data_bits} and 64, got {spec.acc_bits}")
    _positive(spec, "max_k", 1 << 24)
    _positive(spec, "max_dim", 1 << 24)
    need = required_acc_bits(spec.data_bits, spec.max_k)
    if spec.acc_bits < need:
        raise SpecError("acc_bits", f"{spec.acc_bits} bits cannot hold max_k={spec.max_k} products of "
                        f"int{spec.data_bits} x int{spec.data_bits} without overflow; need >= {need} "
                        f"(or lower max_k)")
    _positive(spec, "wbuf_depth", 1 << 16)
    _positive(spec, "abuf_depth", 1 << 16)
    if spec.axi_bits not in AXI_WIDTHS:
        raise SpecError("axi_bits", f"must be one of {AXI_WIDTHS}, got {spec.axi_bits}")
    if not 10.0 <= spec.clock_mhz <= 1000.0:
        raise SpecError("clock_mhz", f"must be between 10 and 1000 MHz, got {spec.clock_mhz}")
    if spec.board not in BOARDS:
        raise SpecError("board", f"unknown board {spec.board!r}; known: {', '.join(sorted(BOARDS))}")
    if spec.part and spec.part != BOARDS[spec.board]["part"]:
        raise SpecError("part", f"{spec.part!r} is not the part of board {spec.board!r} "
                        f"({BOARDS[spec.board]['part']}); leave it empty or choose a matching board")


def make_spec(**kwargs: Any) -> ArchSpec:
    """Build and validate a spec from keyword fields; unknown keys and wrong types are errors."""
    known = set(_FIELD_TYPES)
    for key in kwargs:
        if key not in known:
            raise SpecError(key, f"unknown field; known fields: {', '.join(sorted(known))}")
    clean = {k: _check_type(k, v) for k, v in kwargs.items()}
    spec = ArchSpec(**clean)
    validate(spec)
    return spec


def spec_to_dict(spec: ArchSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def spec_to_json(spec: ArchSpec) -> str:
    """Canonical JSON of a spec: a valid spec file that regenerates byte-identical output."""
    return json.dumps(spec_to_dict(spec), indent=2, sort_keys=True) + "\n"


def load_spec(path: str | Path) -> ArchSpec:
    """Load a spec from a .toml or .json file. A file may start from a preset with ``base = "name"``."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(None, f"spec file not found: {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            raise SpecError(None, f"spec file must end in .toml or .json: {p}")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise SpecError(None, f"cannot parse {p}: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(None, f"{p}: top level must be a table/object of spec fields")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base not in PRESETS:
            raise SpecError("base", f"unknown preset {base!r}; known: {', '.join(preset_names())}")
        merged = spec_to_dict(PRESETS[base])
        merged.update(data)
        data = merged
    return make_spec(**data)


# ---- presets -------------------------------------------------------------------------------
# All sparse presets share the array, widths and buffers of sat_2x8 unless the sparsity needs
# otherwise; `dense` is the baseline with sat_2x8's multipliers (2 per PE) and no index muxes.
PRESETS: dict[str, ArchSpec] = {
    "sat_2x8": make_spec(name="sat_2x8", n=2, m=8),
    "sat_2x4": make_spec(name="sat_2x4", n=2, m=4),
    "sat_1x4": make_spec(name="sat_1x4", n=1, m=4),
    "sat_4x8": make_spec(name="sat_4x8", n=4, m=8),
    "sat_1x16": make_spec(name="sat_1x16", n=1, m=16),
    "sat_2x8_int16": make_spec(name="sat_2x8_int16", n=2, m=8, data_bits=16, acc_bits=48),
    "sat_2x8_kv260": make_spec(name="sat_2x8_kv260", n=2, m=8, rows=4, cols=4, axi_bits=128,
                               clock_mhz=200.0, board="kv260", wbuf_depth=256, abuf_depth=256),
    "dense": make_spec(name="dense", n=2, m=8, sparse=False),
    # Chosen by `make sweep` (docs/SWEEP.md): the fastest 2:8 point (modelled ResNet-18 step, the
    # model of the kernel with its B reuse buffer) whose Yosys-synthesized RTL kernel stays within 70 %
    # of the xcvu9p (`make vu9p-reports`: docs/synth_*_vu9p.json, checked by tests/test_vu9p.py).
    "sat_2x8_vu9p": make_spec(name="sat_2x8_vu9p", n=2, m=8, rows=32, cols=64, wbuf_depth=2048, abuf_depth=2048),
    "dense_vu9p": make_spec(name="dense_vu9p", n=2, m=8, sparse=False, rows=32, cols=64, wbuf_depth=2048,
                            abuf_depth=2048),
}

PRESET_SUMMARIES: dict[str, str] = {
    "sat_2x8": "2:8 sparse, 8x8 PEs x 2 MACs, int8->int32, VCU1525 (the paper's setting; default)",
    "sat_2x4": "2:4 sparse (Sparse-Tensor-Core ratio), 8x8 PEs x 2 MACs, int8->int32, VCU1525",
    "sat_1x4": "1:4 sparse, 8x8 PEs x 1 MAC, int8->int32, VCU1525",
    "sat_4x8": "4:8 sparse, 8x8 PEs x 4 MACs, int8->int32, VCU1525",
    "sat_1x16": "1:16 sparse, 8x8 PEs x 1 MAC, int8->int32, VCU1525",
    "sat_2x8_int16": "2:8 sparse, 8x8 PEs x 2 MACs, int16->int48 (one DSP48E2 per MAC), VCU1525",
    "sat_2x8_kv260": "2:8 sparse, 4x4 PEs x 2 MACs, int8->int32, Kria KV260 via PYNQ, 200 MHz",
    "dense": "dense baseline: sat_2x8's 8x8 PEs x 2 MACs without index muxes",
    "sat_2x8_vu9p": "2:8 sparse, 32x64 PEs x 2 MACs (4096 DSP48E2), int8->int32, VCU1525-sized (chosen by make sweep)",
    "dense_vu9p": "dense baseline: sat_2x8_vu9p's 32x64 PEs x 2 MACs without index muxes",
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> ArchSpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise SpecError(None, f"unknown architecture {name!r}; presets: {', '.join(preset_names())}") from None
