"""The csim backend: the generated HLS kernel, compiled by g++ into a shared library, called via ctypes.

This is the real kernel code (``build/<arch>/hls/*.cpp`` against the ap_types headers), not a
re-implementation. ``gen.csim.build_csim_library`` compiles (and caches) it; it is a dev-side step,
so ``gen`` is imported only here and only when no prebuilt ``library`` path is given.
C API (docs/ARCHITECTURE.md)::

    uint32_t satgen_run(uint32_t mode, uint32_t rows, uint32_t k, uint32_t cols, uint32_t n,
                        const void *a_val, const void *a_idx, const void *b, void *c,
                        void *ff_val, void *ff_idx, void *bp_val, void *bp_idx);   // -> status register
    const char *satgen_arch(void);
    int satgen_regmap_version(void);

Buffers are memory ABI v2 bytes (hostpy.abi), each at an address that is a multiple of the AXI
word, as on a board: inputs are copied into word-aligned pooled buffers first.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from ..archdir import REGMAP_VERSION, Arch
from ..device import BufferPool, Device, KernelCall, aligned_bytes, check_status, output_layout, scalar_values
from ..errors import ArchMismatchError, BackendUnavailableError, KernelError, RegmapVersionError

_PTR_ARGS = ("a_val", "a_idx", "b", "c", "ff_val", "ff_idx", "bp_val", "bp_idx")


def build_library(arch: Arch) -> Path:
    """Compile (or reuse the cached) C-simulation library of ``arch`` via gen.csim."""
    try:
        from gen.csim import build_csim_library
    except ImportError as e:
        raise BackendUnavailableError(f"the csim backend needs the satgen generator (gen.csim) to build the "
                                      f"kernel library: {e}") from e
    try:
        return Path(build_csim_library(arch.path))
    except Exception as e:  # compiler missing, ap_types missing, template error: all make csim unavailable
        raise BackendUnavailableError(f"cannot build the C-simulation library of {arch.spec.name}: {e}") from e


def load_library(path: Path, arch: Arch) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as e:
        raise BackendUnavailableError(f"cannot load C-simulation library {path}: {e}") from e
    lib.satgen_run.restype = ctypes.c_uint32
    lib.satgen_run.argtypes = [ctypes.c_uint32] * 5 + [ctypes.c_void_p] * len(_PTR_ARGS)
    lib.satgen_arch.restype = ctypes.c_char_p
    lib.satgen_arch.argtypes = []
    lib.satgen_regmap_version.restype = ctypes.c_int
    lib.satgen_regmap_version.argtypes = []
    version = lib.satgen_regmap_version()
    if version != REGMAP_VERSION:
        raise RegmapVersionError(f"{path} implements register map version {version}, this hostpy reads "
                                 f"{REGMAP_VERSION}; rebuild the library")
    name = lib.satgen_arch().decode()
    if name != arch.spec.name:
        raise ArchMismatchError(f"{path} was generated for {name!r}, not for {arch.spec.name!r}")
    return lib


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


class CsimDevice(Device):
    backend = "csim"

    def __init__(self, arch: Arch, library: str | Path | None = None):
        super().__init__(arch)
        self.library = Path(library) if library is not None else build_library(arch)
        self._lib = load_library(self.library, arch)
        word = arch.regmap["abi"]["word_bytes"]
        self._pool = BufferPool(lambda count, dtype: aligned_bytes(count * np.dtype(dtype).itemsize, word).view(dtype))

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        args: dict[str, np.ndarray] = {}
        for name, data in call.inputs().items():
            buf = self._pool.get(name, data.size, np.uint8)
            buf[:data.size] = data
            args[name] = buf
        outs = {name: self._pool.get(name, count, dtype)[:count] for name, (count, dtype)
                in output_layout(self.arch, call).items()}
        args.update(outs)
        sc = scalar_values(self.arch, call)
        status = self._lib.satgen_run(sc["mode"], sc["rows"], sc["k"], sc["cols"], sc["n"],
                                      *(_ptr(args.get(n)) for n in _PTR_ARGS))
        check_status(self.arch, status, call)
        return {name: buf.copy() for name, buf in outs.items()}
