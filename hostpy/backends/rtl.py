"""The rtl backend: the RTL kernel, compiled by Verilator into a library, driven like a board.

``gen.rtlsim.build_rtl_library`` builds (and caches) ``libsat_rtl.so`` from the generated RTL
(``build/<arch>/rtl``) and the generated C++ harness (``build/<arch>/rtlsim/sat_rtlsim.cpp``):
the Verilator model of ``sat_kernel``, an AXI4-Lite master on its control port and a memory model
behind every m_axi bundle (:class:`gen.memmodel.MemoryModel`: latencies, per-bank or shared
bandwidth, random stalls; AXI protocol violations are counted). No Python runs per cycle.

:class:`RtlModel` is the library's C API in Python: ``write_reg/read_reg`` (AXI4-Lite
transactions, the kernel keeps running meanwhile), ``alloc/copy_to/copy_from`` (device memory),
``run`` (until ``interrupt`` or a cycle limit), cycle counters, ``trace``. Fake board devices
(the pynq mock, the fake pyxrt) can forward their register writes and buffers to it.

:class:`RtlDevice` programs a job exactly as the pynq backend does on a board, from regmap.json
only: pointer arguments low/high word, scalar arguments, then ap_start; it enables the ap_done
interrupt (GIE, IER), waits for ``interrupt`` within a cycle limit (:class:`DeviceTimeoutError`
otherwise, and the model is reset), reads ap_done from the control register, clears ISR, reads
``status`` (its ap_vld flag first) and checks it, and raises :class:`KernelError` on any AXI
protocol violation the memory model saw.
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..archdir import REGMAP_VERSION, Arch
from ..device import BufferPool, Device, KernelCall, check_status, output_layout, scalar_values
from ..errors import ArchMismatchError, BackendUnavailableError, DeviceTimeoutError, KernelError, RegmapVersionError

__all__ = ["RtlModel", "RtlDevice", "RtlExecutor", "executor", "build_library", "cycle_limit"]

HARNESS_API = 1
LITE_LIMIT = 10_000          # cycles an AXI4-Lite transaction may take before it counts as a hang


def build_library(arch: Arch, *, trace: bool = False, log=lambda msg: None) -> Path:
    """Build (or reuse) the Verilator library of ``arch``'s RTL kernel via gen.rtlsim."""
    try:
        from gen.rtlsim import build_rtl_library
    except ImportError as e:
        raise BackendUnavailableError(f"the rtl backend needs the satgen generator (gen.rtlsim) to build the "
                                      f"RTL kernel library: {e}") from e
    try:
        return Path(build_rtl_library(arch.path, trace=trace, log=log))
    except Exception as e:  # verilator missing, RTL missing, build error: the backend is unavailable
        raise BackendUnavailableError(f"cannot build the RTL simulation library of {arch.spec.name}: {e}") from e


def _memory_model(memory):
    from gen.memmodel import MemoryModel
    if memory is None:
        return MemoryModel()
    if isinstance(memory, dict):
        return MemoryModel(**memory)
    return memory


class RtlModel:
    """One Verilator model of the kernel with its memory (the library's C API, handle-based)."""

    def __init__(self, library: str | Path, memory=None):
        self.library = Path(library)
        try:
            lib = ctypes.CDLL(str(self.library))
        except OSError as e:
            raise BackendUnavailableError(f"cannot load the RTL simulation library {self.library}: {e}") from e
        self._lib = lib
        vp, u32, u64, i64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64
        sig = {
            "satrtl_api_version": (ctypes.c_int, []), "satrtl_arch": (ctypes.c_char_p, []),
            "satrtl_regmap_version": (ctypes.c_int, []), "satrtl_abi_version": (ctypes.c_int, []),
            "satrtl_word_bytes": (ctypes.c_int, []), "satrtl_n_masters": (ctypes.c_int, []),
            "satrtl_master_name": (ctypes.c_char_p, [ctypes.c_int]), "satrtl_master_bank": (ctypes.c_int, [ctypes.c_int]),
            "satrtl_has_trace": (ctypes.c_int, []), "satrtl_new": (vp, []), "satrtl_delete": (None, [vp]),
            "satrtl_config": (ctypes.c_int, [vp, u32, u32, ctypes.c_double, ctypes.c_int, ctypes.c_double, u64]),
            "satrtl_reset": (None, [vp, ctypes.c_int]), "satrtl_alloc": (u64, [vp, u64]),
            "satrtl_free": (ctypes.c_int, [vp, u64]),
            "satrtl_write_mem": (ctypes.c_int, [vp, u64, vp, u64]), "satrtl_read_mem": (ctypes.c_int, [vp, u64, vp, u64]),
            "satrtl_write_reg": (ctypes.c_int, [vp, u32, u32, u64]),
            "satrtl_read_reg": (ctypes.c_int, [vp, u32, ctypes.POINTER(u32), u64]),
            "satrtl_step": (None, [vp, u64]), "satrtl_run": (i64, [vp, u64]), "satrtl_interrupt": (ctypes.c_int, [vp]),
            "satrtl_cycles": (u64, [vp]), "satrtl_kernel_cycles": (u64, [vp]),
            "satrtl_error_count": (u64, [vp]), "satrtl_first_error": (ctypes.c_char_p, [vp]),
            "satrtl_clear_errors": (None, [vp]), "satrtl_master_stat": (u64, [vp, ctypes.c_int, ctypes.c_int]),
            "satrtl_trace": (ctypes.c_int, [vp, ctypes.c_char_p, u64, u64]), "satrtl_trace_close": (None, [vp]),
        }
        for name, (res, args) in sig.items():
            try:
                fn = getattr(lib, name)
            except AttributeError as e:
                raise BackendUnavailableError(f"{self.library} is not a satgen RTL simulation library "
                                              f"(no {name}): rebuild it") from e
            fn.restype, fn.argtypes = res, args
        if lib.satrtl_api_version() != HARNESS_API:
            raise BackendUnavailableError(f"{self.library} has harness API {lib.satrtl_api_version()}, this hostpy "
                                          f"speaks {HARNESS_API}: rebuild it")
        self.arch_name = lib.satrtl_arch().decode()
        self.regmap_version = lib.satrtl_regmap_version()
        self.abi_version = lib.satrtl_abi_version()
        self.word_bytes = lib.satrtl_word_bytes()
        self.masters = [(lib.satrtl_master_name(i).decode(), lib.satrtl_master_bank(i))
                        for i in range(lib.satrtl_n_masters())]
        self._h = lib.satrtl_new()
        self.memory = None
        self.configure(memory)

    # ---- set-up ---------------------------------------------------------------------------
    def configure(self, memory=None) -> None:
        """Apply a :class:`gen.memmodel.MemoryModel` (or its dict) to the memory side."""
        mm = _memory_model(memory)
        rc = self._lib.satrtl_config(self._h, mm.read_latency, mm.write_latency, float(mm.words_per_cycle),
                                     1 if mm.banking == "shared" else 0, float(mm.stall_rate), int(mm.seed) & (2**64 - 1))
        if rc != 0:
            raise ValueError(f"the RTL memory model refused {mm}")
        self.memory = mm

    def reset(self, cycles: int = 16) -> None:
        """Hold ap_rst_n low for ``cycles`` (memory contents stay; in-flight bursts are dropped)."""
        self._lib.satrtl_reset(self._h, int(cycles))

    def close(self) -> None:
        if getattr(self, "_h", None):
            self._lib.satrtl_delete(self._h)
            self._h = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- memory ---------------------------------------------------------------------------
    def alloc(self, nbytes: int) -> int:
        """A zeroed device buffer of ``nbytes`` (rounded up to words) at a page-aligned address above 4 GiB."""
        return int(self._lib.satrtl_alloc(self._h, int(nbytes)))

    def free(self, addr: int) -> None:
        if self._lib.satrtl_free(self._h, int(addr)) != 0:
            raise KernelError(f"no device buffer at 0x{addr:x}")

    def copy_to(self, addr: int, data) -> None:
        buf = np.ascontiguousarray(np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray))
                                   else np.asarray(data).reshape(-1).view(np.uint8))
        if self._lib.satrtl_write_mem(self._h, int(addr), buf.ctypes.data_as(ctypes.c_void_p), buf.size) != 0:
            raise KernelError(f"device write of {buf.size} bytes at 0x{addr:x} is outside every buffer")

    def copy_from(self, addr: int, nbytes: int) -> np.ndarray:
        out = np.empty(int(nbytes), np.uint8)
        if self._lib.satrtl_read_mem(self._h, int(addr), out.ctypes.data_as(ctypes.c_void_p), out.size) != 0:
            raise KernelError(f"device read of {nbytes} bytes at 0x{addr:x} is outside every buffer")
        return out

    # ---- registers (AXI4-Lite, the clock runs meanwhile) ------------------------------------
    def write_reg(self, offset: int, value: int) -> None:
        rc = self._lib.satrtl_write_reg(self._h, int(offset), int(value) & 0xFFFFFFFF, LITE_LIMIT)
        if rc < 0:
            raise DeviceTimeoutError(f"AXI4-Lite write to 0x{offset:x}: no response within {LITE_LIMIT} cycles")
        if rc != 0:
            raise KernelError(f"AXI4-Lite write to 0x{offset:x}: BRESP {rc}")

    def read_reg(self, offset: int) -> int:
        v = ctypes.c_uint32(0)
        rc = self._lib.satrtl_read_reg(self._h, int(offset), ctypes.byref(v), LITE_LIMIT)
        if rc < 0:
            raise DeviceTimeoutError(f"AXI4-Lite read of 0x{offset:x}: no response within {LITE_LIMIT} cycles")
        if rc != 0:
            raise KernelError(f"AXI4-Lite read of 0x{offset:x}: RRESP {rc}")
        return int(v.value)

    # ---- time -----------------------------------------------------------------------------
    def step(self, cycles: int = 1) -> None:
        self._lib.satrtl_step(self._h, int(cycles))

    def run(self, max_cycles: int) -> int | None:
        """Clock until ``interrupt`` is high; the cycles that took, or None after ``max_cycles``."""
        c = self._lib.satrtl_run(self._h, int(max_cycles))
        return None if c < 0 else int(c)

    @property
    def interrupt(self) -> bool:
        return bool(self._lib.satrtl_interrupt(self._h))

    @property
    def cycles(self) -> int:
        """Clock cycles simulated since the model was created."""
        return int(self._lib.satrtl_cycles(self._h))

    @property
    def kernel_cycles(self) -> int:
        """Cycles from the ap_start write's handshake to the first cycle of ``interrupt`` (last job)."""
        return int(self._lib.satrtl_kernel_cycles(self._h))

    # ---- checks and statistics --------------------------------------------------------------
    def protocol_errors(self) -> tuple[int, str]:
        """(number of AXI protocol violations seen, description of the first)."""
        return int(self._lib.satrtl_error_count(self._h)), self._lib.satrtl_first_error(self._h).decode()

    def clear_errors(self) -> None:
        self._lib.satrtl_clear_errors(self._h)

    def master_stats(self) -> dict[str, dict[str, int]]:
        keys = ("read_beats", "write_beats", "read_bursts", "write_bursts", "reads_in_flight", "writes_in_flight")
        return {name: {k: int(self._lib.satrtl_master_stat(self._h, i, j)) for j, k in enumerate(keys)}
                for i, (name, _) in enumerate(self.masters)}

    def trace(self, path: str | Path, first_cycle: int, last_cycle: int) -> None:
        """Dump cycles [first_cycle, last_cycle) (absolute, see ``cycles``) to ``path`` (FST, or VCD where
        Verilator's FST writer is unavailable). Needs a library built with ``trace=True``."""
        if self._lib.satrtl_trace(self._h, str(path).encode(), int(first_cycle), int(last_cycle)) != 0:
            raise BackendUnavailableError(f"{self.library} was built without tracing (open with trace=True)")

    def trace_close(self) -> None:
        self._lib.satrtl_trace_close(self._h)

    @property
    def trace_format(self) -> str | None:
        return {0: None, 1: "vcd", 2: "fst"}[self._lib.satrtl_has_trace()]


@dataclass
class _DevBuffer:
    """A device buffer of the RTL model, with the bookkeeping BufferPool expects."""

    addr: int
    size: int
    dtype: np.dtype


def cycle_limit(arch: Arch, call: KernelCall, memory) -> int:
    """A generous cycle budget for ``call``: well above what any correct kernel needs, so only a hang hits it."""
    from ..abi import Abi
    s = arch.spec
    word = arch.regmap["abi"]["word_bytes"]
    words = sum(Abi(s).call_bytes(call.mode, call.rows, call.k, call.cols, call.n).values()) // word
    step = s.m if call.mode == "SPARSE" else s.n
    tiles = -(-call.rows // s.rows) * -(-max(call.cols, 1) // s.cols)
    compute = tiles * -(-call.k // step) if call.mode != "PRUNE" else words
    slow = memory.words_per_cycle * (1.0 - memory.stall_rate) ** 2
    return int(8 * (words + compute) / slow + 64 * (memory.read_latency + memory.write_latency) * (1 + tiles) + 20_000)


class RtlDevice(Device):
    """The rtl backend (see the module docstring). Options: ``library`` (a prebuilt libsat_rtl.so),
    ``memory`` (MemoryModel or dict), ``max_cycles`` (per call; default :func:`cycle_limit`),
    ``trace`` (a path: dump the first call's cycles to it; builds the tracing variant)."""

    backend = "rtl"

    def __init__(self, arch: Arch, library: str | Path | None = None, memory=None, max_cycles: int | None = None,
                 trace: str | Path | None = None):
        super().__init__(arch)
        self.library = Path(library) if library is not None else build_library(arch, trace=trace is not None)
        self.model = RtlModel(self.library, memory)
        self._check_library()
        self.max_cycles = max_cycles
        self._trace = trace
        rm = arch.regmap
        self._ctrl = rm["control"]["offset"]
        self._bits = rm["control"]["bits"]
        self._status = arch.arg("status")
        self._pool = BufferPool(self._alloc)
        self.calls = 0
        self.last_cycles = 0          # simulated kernel cycles of the last call (ap_start -> interrupt)
        self.total_cycles = 0         # sum over calls
        self.sim_seconds = 0.0        # wall-clock time spent in execute (register traffic, copies, the model)
        self.sim_cpu_seconds = 0.0    # CPU time of this process in execute (one thread: one core's work)
        # ap_done raises the interrupt: the run loop waits for it instead of polling the control register.
        self.model.write_reg(rm["gie"]["offset"], 1)
        self.model.write_reg(rm["ier"]["offset"], 1 << 0)

    @property
    def memory(self):
        return self.model.memory

    def _check_library(self) -> None:
        m, a = self.model, self.arch
        if m.regmap_version != REGMAP_VERSION:
            raise RegmapVersionError(f"{self.library} implements register map version {m.regmap_version}, this "
                                     f"hostpy reads {REGMAP_VERSION}; rebuild the library")
        if m.arch_name != a.spec.name:
            raise ArchMismatchError(f"{self.library} was generated for {m.arch_name!r}, not for {a.spec.name!r}")
        want = [(r["bundle"], r["bank"]) for r in a.regmap["args"] if r["kind"] == "ptr"]
        if m.masters != want or m.abi_version != a.regmap["abi"]["version"]:
            raise ArchMismatchError(f"{self.library}: masters {m.masters} / ABI v{m.abi_version} do not match "
                                    f"regmap.json ({want}, ABI v{a.regmap['abi']['version']})")

    def _alloc(self, count: int, dtype) -> _DevBuffer:
        dtype = np.dtype(dtype)
        return _DevBuffer(self.model.alloc(count * dtype.itemsize), count, dtype)

    def _write_args(self, values: dict[str, int]) -> None:
        for reg in self.arch.regmap["args"]:
            if reg["kind"] == "scalar_out":
                continue
            value = int(values.get(reg["name"], 0))
            self.model.write_reg(reg["offset"], value & 0xFFFFFFFF)
            if reg["kind"] == "ptr":
                self.model.write_reg(reg["offset"] + 4, (value >> 32) & 0xFFFFFFFF)

    def prepare(self, call: KernelCall) -> tuple[dict[str, int], dict[str, tuple[_DevBuffer, int]]]:
        """Copy the inputs into device buffers; (argument register values, output buffers) of ``call``."""
        values: dict[str, int] = dict(scalar_values(self.arch, call))
        for name, data in call.inputs().items():
            buf = self._pool.get(name, data.size, np.uint8)
            self.model.copy_to(buf.addr, data)
            values[name] = buf.addr
        outs = {}
        for name, (count, dtype) in output_layout(self.arch, call).items():
            buf = self._pool.get(name, count, dtype)
            outs[name] = (buf, count)
            values[name] = buf.addr
        return values, outs

    def launch(self, values: dict[str, int]) -> None:
        """Program every argument register (regmap.json) and set ap_start."""
        self._write_args(values)
        if self._trace is not None and self.calls == 0:
            self.model.trace(self._trace, self.model.cycles, self.model.cycles + 200_000)
        self.model.write_reg(self._ctrl, 1 << self._bits["ap_start"])

    def wait_status(self, limit: int, what: str) -> int:
        """Clock until ap_done's interrupt (``limit`` cycles at most); check ap_done, clear ISR, return ``status``.

        Raises DeviceTimeoutError at the limit (the model is reset), KernelError when the control
        registers disagree with the interrupt or the memory model saw an AXI protocol violation.
        """
        cycles = self.model.run(limit)
        name = self.arch.spec.name
        if cycles is None:
            self.model.reset()
            self.model.write_reg(self.arch.regmap["gie"]["offset"], 1)
            self.model.write_reg(self.arch.regmap["ier"]["offset"], 1)
            raise DeviceTimeoutError(f"{name}: no ap_done within {limit} simulated cycles after starting {what} "
                                     f"(the RTL model was reset)")
        ctrl = self.model.read_reg(self._ctrl)
        if not ctrl >> self._bits["ap_done"] & 1:
            raise KernelError(f"{name}: interrupt raised but the control register reads 0x{ctrl:x} without ap_done")
        self.model.write_reg(self.arch.regmap["isr"]["offset"], 1)       # toggle-on-write: clear ap_done's bit
        if self.model.interrupt:
            self.model.step(2)
            if self.model.interrupt:
                raise KernelError(f"{name}: interrupt still high after clearing ISR bit 0")
        vld = self.model.read_reg(self._status["vld_offset"])
        status = self.model.read_reg(self._status["offset"])
        if not vld & 1:
            raise KernelError(f"{name}: status ap_vld not set after ap_done")
        n, first = self.model.protocol_errors()
        if n:
            self.model.clear_errors()
            raise KernelError(f"{name}: {n} AXI protocol violation(s) during {what}; first: {first}")
        return status

    def wait(self, call: KernelCall, limit: int) -> int:
        """:meth:`wait_status`, then the status checked against ``call``; returns the job's kernel cycles."""
        status = self.wait_status(limit, f"{call.mode} rows={call.rows} k={call.k} cols={call.cols}")
        check_status(self.arch, status, call)
        return self.model.kernel_cycles

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        t0, c0 = time.perf_counter(), time.process_time()
        values, outs = self.prepare(call)
        self.launch(values)
        limit = self.max_cycles if self.max_cycles is not None else cycle_limit(self.arch, call, self.memory)
        try:
            self.last_cycles = self.wait(call, limit)
        finally:
            self.calls += 1
            self.sim_seconds += time.perf_counter() - t0
            self.sim_cpu_seconds += time.process_time() - c0
        self.total_cycles += self.last_cycles
        if self._trace is not None and self.calls == 1:
            self.model.trace_close()
        return {name: self.model.copy_from(buf.addr, count) for name, (buf, count) in outs.items()}

    def close(self) -> None:
        if getattr(self, "model", None) is not None:
            self.model.close()


class RtlExecutor:
    """The RTL kernel as the *executor* of the board fakes (tests/fakes.py: the fake pynq.Device and the
    fake pyxrt call ``execute`` when a run starts), so the pynq/xrt drivers' tests meet the RTL.

    ``execute(mode_code, scalars, buffers, addresses) -> status``: the views of device memory are
    copied into RTL device buffers at the same offset within an AXI word as the programmed address
    (a misaligned pointer stays misaligned), every argument register is programmed from regmap.json
    through the AXI4-Lite port, ap_start, ap_done's interrupt within the cycle limit, and the output
    views are written back; the kernel's own ``status`` register is returned.
    """

    name = "rtl"

    def __init__(self, arch: Arch, library: str | Path | None = None, memory=None):
        self.device = RtlDevice(arch, library=library, memory=memory)
        self.arch = arch
        self.jobs: list[tuple] = []      # (mode code, rows, k, cols, n, status, kernel cycles)

    def execute(self, mode_code: int, scalars: dict, buffers: dict, addresses: dict) -> int:
        dev, word = self.device, self.arch.regmap["abi"]["word_bytes"]
        values = {name: int(v) for name, v in scalars.items()}
        values["mode"] = int(mode_code)
        placed = {}
        for name, view in buffers.items():
            if view is None:
                continue
            view = np.asarray(view).reshape(-1).view(np.uint8)
            off = int(addresses.get(name, 0)) % word
            buf = dev._pool.get(name, view.size + off, np.uint8)
            dev.model.copy_to(buf.addr + off, view)
            values[name] = buf.addr + off
            placed[name] = (buf.addr + off, view)
        modes = {v: k for k, v in self.arch.regmap["modes"].items()}
        what = f"mode {mode_code} rows={values.get('rows')} k={values.get('k')} cols={values.get('cols')}"
        limit = dev.max_cycles
        if limit is None:
            try:
                call = KernelCall(modes[mode_code], max(values["rows"], 1), max(values["k"], 1),
                                  max(values.get("cols", 1), 1), np.zeros(0, np.uint8), n=values.get("n"))
                limit = cycle_limit(self.arch, call, dev.memory)
            except Exception:          # a job the kernel must refuse: it ends at once
                limit = 100_000
        dev.launch(values)
        status = dev.wait_status(limit, what)
        for name, (addr, view) in placed.items():
            if self.arch.arg(name)["direction"] == "out":
                view[:] = dev.model.copy_from(addr, view.size)
        self.jobs.append((mode_code, values.get("rows"), values.get("k"), values.get("cols"), values.get("n"), status,
                          dev.model.kernel_cycles))
        return int(status)


def executor(arch: Arch) -> RtlExecutor:
    """Factory for ``SATGEN_FAKE_EXECUTOR=hostpy.backends.rtl:executor`` (tests/fakes.py)."""
    return RtlExecutor(arch)
