"""The ``Device`` protocol: one kernel invocation, as every backend executes it.

A backend receives a :class:`KernelCall` that is already validated and within the kernel's
per-call limits (the :class:`hostpy.accel.Accelerator` front end checks and tiles), and returns
the kernel's outputs as NumPy arrays. The call mirrors the kernel's argument list (regmap.json):

=======  ===========================================  ==========================================
mode     inputs                                       outputs
=======  ===========================================  ==========================================
SPARSE   a_val [rows*G*N], a_idx packed, b [k*cols]   c [rows*cols]
DENSE    a_val [rows*k], b [k*cols]                   c [rows*cols]
PRUNE    a_val = dense W [rows*k]                     ff_val/ff_idx (groups along k),
                                                      bp_val/bp_idx (groups along rows)
=======  ===========================================  ==========================================

G = ceil(k/M) for SPARSE/ff, ceil(rows/M) for bp. Packed indices: hostpy.nm.pack_indices layout.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .archdir import Arch

__all__ = ["KernelCall", "Device", "output_layout", "BufferPool"]


@dataclass(frozen=True)
class KernelCall:
    mode: str                       # "SPARSE" | "DENSE" | "PRUNE" (regmap.json "modes")
    rows: int
    k: int
    cols: int
    a_val: np.ndarray               # flat, arch data dtype
    a_idx: np.ndarray | None = None  # flat uint8 (SPARSE)
    b: np.ndarray | None = None     # flat, arch data dtype (SPARSE, DENSE)


def _packed_bytes(count: int, idx_bits: int) -> int:
    return -(-count * idx_bits // 8)


def output_layout(arch: Arch, call: KernelCall) -> dict[str, tuple[int, np.dtype]]:
    """Name -> (element count, dtype) of every output buffer the call writes."""
    s = arch.spec
    if call.mode == "PRUNE":
        ff_count = call.rows * -(-call.k // s.m) * s.n
        bp_count = call.k * -(-call.rows // s.m) * s.n
        return {"ff_val": (ff_count, arch.data_dtype), "ff_idx": (_packed_bytes(ff_count, s.idx_bits), np.dtype(np.uint8)),
                "bp_val": (bp_count, arch.data_dtype), "bp_idx": (_packed_bytes(bp_count, s.idx_bits), np.dtype(np.uint8))}
    return {"c": (call.rows * call.cols, arch.acc_dtype)}


class Device(abc.ABC):
    """A backend that executes one kernel call. Subclasses: numpy, csim, pynq, xrt."""

    backend: str = ""

    def __init__(self, arch: Arch):
        self.arch = arch

    @abc.abstractmethod
    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        """Run the kernel once; return the outputs named in :func:`output_layout`."""

    def close(self) -> None:
        """Release buffers / handles (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BufferPool:
    """Reuses one buffer per argument name across calls, growing it only when a call needs more.

    ``alloc(count, dtype)`` creates a buffer (numpy, pynq.allocate, an XRT bo wrapper, ...); the pool
    hands out a flat view of the first ``count`` elements so repeated calls of similar size (every
    training step) allocate nothing.
    """

    def __init__(self, alloc):
        self._alloc = alloc
        self._buffers: dict[str, object] = {}
        self.allocations = 0         # how many buffers were really allocated (for tests/bench)

    def get(self, name: str, count: int, dtype: np.dtype):
        dtype = np.dtype(dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < count:
            buf = self._alloc(max(count, 1), dtype)
            self._buffers[name] = buf
            self.allocations += 1
        return buf

    def buffers(self) -> dict[str, object]:
        return dict(self._buffers)

    def clear(self) -> None:
        self._buffers.clear()
