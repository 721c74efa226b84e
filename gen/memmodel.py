"""The memory system the kernels are measured and modelled against (one definition for both).

The Verilator-built RTL kernel's C++ memory model (hostpy rtl backend) and the performance model
(gen/perf.py) take the same :class:`MemoryModel`, so a measured cycle count and a modelled one
always refer to the same DDR. Bundles reach memory through the bank regmap.json gives them
(gen.regmap.memory_bank); bundles on one bank share its bandwidth.

Defaults: one 512-bit word per kernel cycle per bank is the peak of a DDR4-2400 x64 channel at
300 MHz (19.2 GB/s); 64 cycles of read latency is about 200 ns at 300 MHz, a loaded DDR4
controller plus interconnect (../shared/KERNEL.md: never model memory as zero-latency).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["MemoryModel", "BANKING"]

BANKING = ("per_bank", "shared")


@dataclass(frozen=True)
class MemoryModel:
    read_latency: int = 64           # cycles from an AR handshake to the first R beat of that burst
    write_latency: int = 32          # cycles from a burst's last W beat to its B response
    words_per_cycle: float = 1.0     # sustained AXI words per kernel cycle of one bank (reads + writes)
    banking: str = "per_bank"        # "per_bank": each regmap bank is its own channel; "shared": one for all
    stall_rate: float = 0.0          # probability of a random pause on each channel handshake, per cycle
    seed: int = 0                    # seed of the random pauses

    def __post_init__(self) -> None:
        if self.read_latency < 1 or self.write_latency < 1:
            raise ValueError(f"latencies must be >= 1 cycle, got read {self.read_latency}, write {self.write_latency}")
        if not 0.0 < self.words_per_cycle <= 1.0:
            raise ValueError(f"words_per_cycle must be in (0, 1], got {self.words_per_cycle}")
        if self.banking not in BANKING:
            raise ValueError(f"banking must be one of {BANKING}, got {self.banking!r}")
        if not 0.0 <= self.stall_rate < 1.0:
            raise ValueError(f"stall_rate must be in [0, 1), got {self.stall_rate}")

    def to_dict(self) -> dict:
        return asdict(self)
