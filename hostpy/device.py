"""The ``Device`` protocol: one kernel invocation, as every backend executes it.

A backend receives a :class:`KernelCall` that is already validated and within the kernel's
per-call limits (the :class:`hostpy.accel.Accelerator` front end checks, tiles and lays the
operands out), and returns the kernel's output buffers. Every buffer is raw bytes (uint8) in the
memory ABI v2 layout of hostpy.abi, a whole number of AXI words; the call mirrors the kernel's
argument list (regmap.json):

=======  ================================================  ==================================
mode     inputs                                            outputs
=======  ================================================  ==================================
SPARSE   a_val/a_idx compressed(A, R), b grouped(B^T, C)    c: R x C result tiles
DENSE    a_val grouped(A, R), b grouped(B^T, C)             c: R x C result tiles
PRUNE    a_val grouped(W, R)                               ff_val/ff_idx compressed(W, R) along k,
                                                           bp_val/bp_idx compressed(W^T, R)
=======  ================================================  ==================================

After the kernel ends, its ``status`` register says whether it ran the job (:func:`check_status`).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from .abi import Abi
from .archdir import Arch
from .errors import DeviceBusyError, KernelError  # DeviceBusyError: imported by the board backends from here too

__all__ = ["KernelCall", "Device", "output_layout", "scalar_values", "check_status", "aligned_bytes", "BufferPool",
           "DeviceBusyError"]


@dataclass(frozen=True)
class KernelCall:
    mode: str                       # "SPARSE" | "DENSE" | "PRUNE" (regmap.json "modes")
    rows: int
    k: int
    cols: int
    a_val: np.ndarray               # uint8, ABI v2 bytes
    a_idx: np.ndarray | None = None  # uint8, ABI v2 bytes (SPARSE)
    b: np.ndarray | None = None     # uint8, ABI v2 bytes (SPARSE, DENSE)
    n: int | None = None            # kept weights per group (SPARSE/PRUNE); None = the spec's n

    def inputs(self) -> dict[str, np.ndarray]:
        """The input buffers this call passes, by argument name."""
        return {name: buf for name, buf in (("a_val", self.a_val), ("a_idx", self.a_idx), ("b", self.b))
                if buf is not None}


def output_layout(arch: Arch, call: KernelCall) -> dict[str, tuple[int, np.dtype]]:
    """Name -> (byte count, uint8) of every output buffer the call writes (hostpy.abi sizes)."""
    sizes = Abi(arch.spec).call_bytes(call.mode, call.rows, call.k, call.cols, call.n)
    return {name: (nbytes, np.dtype(np.uint8)) for name, nbytes in sizes.items()
            if name in arch.arg_names and arch.arg(name)["direction"] == "out"}


def scalar_values(arch: Arch, call: KernelCall) -> dict[str, int]:
    """Values of the scalar input registers of ``call`` (mode code, sizes, n)."""
    return {"mode": arch.mode_code(call.mode), "rows": call.rows, "k": call.k, "cols": call.cols,
            "n": arch.spec.n if call.n is None else int(call.n)}


def check_status(arch: Arch, status: int, call: KernelCall) -> None:
    """Raise :class:`KernelError` naming every reason when the kernel refused ``call`` (status != 0)."""
    status = int(status)
    if status == 0:
        return
    bits = arch.regmap["status_bits"]
    names = [name for name, bit in sorted(bits.items(), key=lambda kv: kv[1]) if status >> bit & 1]
    unknown = status & ~sum(1 << b for b in bits.values())
    if unknown:
        names.append(f"unknown bits 0x{unknown:x}")
    raise KernelError(f"{arch.spec.name}: the kernel refused {call.mode} rows={call.rows} k={call.k} "
                      f"cols={call.cols} n={scalar_values(arch, call)['n']}: status 0x{status:x} "
                      f"({', '.join(names)})")


def aligned_bytes(nbytes: int, align: int) -> np.ndarray:
    """A zeroed uint8 buffer of ``nbytes`` whose address is a multiple of ``align`` (an AXI word)."""
    raw = np.zeros(nbytes + align, np.uint8)
    skip = (-raw.ctypes.data) % align
    return raw[skip:skip + nbytes]


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
    training step) allocate nothing. ``get(..., alloc=f)`` allocates that argument with ``f`` instead
    (e.g. in the argument's memory bank).

    Placeholders for pointer arguments a call does not use live in a pool of their own, one shared
    buffer per memory bank (``placeholder(bank)``, made by ``placeholder_alloc(bank)``), so they
    never evict or resize the real buffers. ``detach(names)`` takes buffers out of the pool for good
    (a timed-out run may still be using them): the next call that needs one allocates a new buffer.
    """

    def __init__(self, alloc, placeholder_alloc=None):
        self._alloc = alloc
        self._placeholder_alloc = placeholder_alloc
        self._buffers: dict[str, object] = {}
        self._placeholders: dict[object, object] = {}
        self.allocations = 0         # how many buffers were really allocated (for tests/bench)
        self.placeholder_allocations = 0

    def get(self, name: str, count: int, dtype: np.dtype, alloc=None):
        dtype = np.dtype(dtype)
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.size < count:
            buf = (alloc or self._alloc)(max(count, 1), dtype)
            self._buffers[name] = buf
            self.allocations += 1
        return buf

    def placeholder(self, bank):
        """The one placeholder buffer of memory ``bank`` (allocated on first use)."""
        buf = self._placeholders.get(bank)
        if buf is None:
            if self._placeholder_alloc is None:
                raise ValueError("this BufferPool was created without placeholder_alloc")
            buf = self._placeholders[bank] = self._placeholder_alloc(bank)
            self.placeholder_allocations += 1
        return buf

    def detach(self, names) -> dict[str, object]:
        """Remove the buffers of ``names`` from the pool and return them (name -> buffer)."""
        return {n: self._buffers.pop(n) for n in list(names) if n in self._buffers}

    def buffers(self) -> dict[str, object]:
        return dict(self._buffers)

    def placeholders(self) -> dict[object, object]:
        return dict(self._placeholders)

    def clear(self) -> None:
        self._buffers.clear()
        self._placeholders.clear()
