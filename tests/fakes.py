"""Stand-ins for the board runtimes (PYNQ 4.0.0 and pyxrt) that fail the way the real ones do.

Nothing here is the real runtime: each class models the behaviour hostpy's pynq and xrt backends
depend on, read from PYNQ 4.0.0's source (installed) and from pyxrt's binding source
(Xilinx/XRT src/python/pybind11/src/pyxrt.cpp) and XRT's xrt_kernel.cpp / xrt_bo.cpp at the release
tags 2.9, 2.11 ... 2.23. Where the real runtime silently corrupts (a non-contiguous buffer written
to a bo, a run destroyed while it runs on XRT >= 2.23), the fakes record the fault so a test fails.

The kernel itself is pluggable. Both fake devices call an *executor* when a run starts::

    status = executor.execute(mode_code, scalars, buffers, addresses)

* ``mode_code``: value of the ``mode`` register; ``scalars``: every scalar input register by name
  (``mode``, ``rows``, ``k``, ``cols``, ``n``);
* ``buffers``: pointer argument name -> ``np.uint8`` view of *device* memory starting at the address
  programmed for it and running to the end of that allocation (writes go to device memory; the
  host sees them only after a sync / invalidate);
* ``addresses``: pointer argument name -> the programmed device address;
* returns the value of the ``status`` register (0 = ran).

:class:`NumpyExecutor` (the default) runs hostpy's golden model behind the memory ABI v2 (unpack,
golden, pack: :class:`hostpy.backends.numpy_backend.NumpyDevice`), and decides ``status`` from the
regmap's documented refusal rules on its own, so tests are bit-exact against the golden model.
:class:`CsimExecutor` calls the C-simulation library's ``satgen_run`` on the same views (the HLS
kernel), and :func:`default_executor` picks one from ``SATGEN_FAKE_EXECUTOR`` (``numpy``, ``csim``,
or ``module:factory`` for any other executor, e.g. a Verilator-built RTL library), so the same
tests can run every kernel implementation.
"""
from __future__ import annotations

import ctypes
import enum
import importlib
import json
import os
import struct
import sys
import types
import uuid as _uuid

import numpy as np

from hostpy.abi import Abi
from hostpy.backends.numpy_backend import NumpyDevice
from hostpy.device import KernelCall, aligned_bytes

PTR_ORDER = ("a_val", "a_idx", "b", "c", "ff_val", "ff_idx", "bp_val", "bp_idx")   # satgen_run's pointer order


# ---- executors ------------------------------------------------------------------------------------

def refusal_status(arch, mode_code: int, scalars: dict, addresses: dict) -> int:
    """The kernel's ``status`` for a job, from regmap.json's status_bits rules (0 = it runs)."""
    rm, bits = arch.regmap, arch.regmap["status_bits"]
    modes = {v: k for k, v in rm["modes"].items()}
    status = 0
    mode = modes.get(mode_code)
    if mode is None:
        return 1 << bits["bad_mode"]
    lim = rm["limits"]
    rows, k, cols = scalars["rows"], scalars["k"], scalars["cols"]
    if not (1 <= rows <= lim["max_dim"] and 1 <= k <= lim["max_k"]) or \
            (mode != "PRUNE" and not 1 <= cols <= lim["max_dim"]):
        status |= 1 << bits["bad_size"]
    used = Abi(arch.spec).call_bytes(mode, max(rows, 1), max(k, 1), max(cols, 1),
                                     scalars["n"] if 1 <= scalars["n"] <= arch.spec.m else None)
    word = rm["abi"]["word_bytes"]
    if any(addresses.get(name, 0) % word for name in used):
        status |= 1 << bits["misaligned"]
    if mode in ("SPARSE", "PRUNE") and scalars["n"] not in rm["nm"]["runtime_n"]:
        status |= 1 << bits["bad_n"]
    return status


class NumpyExecutor:
    """The golden model as a kernel: reads ABI v2 inputs from device memory, writes ABI v2 outputs."""

    name = "numpy"

    def __init__(self, arch):
        self.arch = arch
        self.ref = NumpyDevice(arch)
        self.modes = {v: k for k, v in arch.regmap["modes"].items()}
        self.jobs = []                       # (mode, rows, k, cols, n, status) of every job it ran

    def execute(self, mode_code, scalars, buffers, addresses):
        status = refusal_status(self.arch, mode_code, scalars, addresses)
        mode = self.modes.get(mode_code)
        self.jobs.append((mode, scalars["rows"], scalars["k"], scalars["cols"], scalars["n"], status))
        if status:
            return status                   # a refused job touches no memory
        n = scalars["n"]
        sizes = Abi(self.arch.spec).call_bytes(mode, scalars["rows"], scalars["k"], scalars["cols"], n)
        ins = {name: np.array(buffers[name][:sizes[name]]) for name in ("a_val", "a_idx", "b") if name in sizes}
        call = KernelCall(mode, scalars["rows"], scalars["k"], scalars["cols"], ins["a_val"], ins.get("a_idx"),
                          ins.get("b"), n)
        for name, data in self.ref.execute(call).items():
            assert data.size == sizes[name], (name, data.size, sizes[name])
            buffers[name][:data.size] = data
        return 0


class CsimExecutor:
    """The C-simulated HLS kernel (``satgen_run`` of the csim library) on the same device views."""

    name = "csim"

    def __init__(self, arch, library=None):
        from hostpy.backends.csim import build_library, load_library
        self.arch = arch
        self.lib = load_library(library or build_library(arch), arch)

    def execute(self, mode_code, scalars, buffers, addresses):
        ptrs = [None if buffers.get(n) is None else buffers[n].ctypes.data_as(ctypes.c_void_p) for n in PTR_ORDER]
        return int(self.lib.satgen_run(mode_code, scalars["rows"], scalars["k"], scalars["cols"], scalars["n"], *ptrs))


def default_executor(arch):
    """The executor named by ``SATGEN_FAKE_EXECUTOR`` (numpy | csim | module:factory), numpy by default."""
    choice = os.environ.get("SATGEN_FAKE_EXECUTOR", "numpy")
    if choice == "numpy":
        return NumpyExecutor(arch)
    if choice == "csim":
        return CsimExecutor(arch)
    module, _, factory = choice.partition(":")
    return getattr(importlib.import_module(module), factory or "executor")(arch)


def _ctrl_bits(arch):
    return {k: 1 << v for k, v in arch.regmap["control"]["bits"].items()}


# ---- PYNQ -----------------------------------------------------------------------------------------

def hwh_registers(arch, *, addr64: bool = True, rename: dict | None = None) -> dict:
    """The kernel IP's ``ip_dict[...]["registers"]`` as PYNQ's .hwh parser builds it for a Vitis HLS export.

    Register names follow the HLS s_axilite adapter (CTRL, GIER, IP_IER, IP_ISR; a 64-bit pointer as
    ``<arg>_1`` / ``<arg>_2``; an output scalar as ``<arg>`` plus ``<arg>_ctrl`` holding ``<arg>_ap_vld``).
    ``addr64=False`` models an export without ``config_interface -m_axi_addr64`` (32-bit pointers, every
    later offset shifted); ``rename`` renames arguments (e.g. a kernel from another generator version).
    """
    def reg(off, access="read-write", desc="", fields=None):
        return {"address_offset": off, "size": 32, "access": access, "description": desc, "fields": fields or {}}

    regs = {"CTRL": reg(0x00, desc="Control signals"), "GIER": reg(0x04), "IP_IER": reg(0x08), "IP_ISR": reg(0x0C)}
    off = 0x10
    for a in arch.regmap["args"]:
        name = (rename or {}).get(a["name"], a["name"])
        if a["kind"] == "ptr":
            if addr64:
                regs[f"{name}_1"] = reg(off, "write-only", f"Data signal of {name}")
                regs[f"{name}_2"] = reg(off + 4, "write-only", f"Data signal of {name}")
                off += 0x0C
            else:
                regs[name] = reg(off, "write-only", f"Data signal of {name}")
                off += 0x08
        elif a["kind"] == "scalar":
            regs[name] = reg(off, "write-only", f"Data signal of {name}")
            off += 0x08
        else:
            regs[name] = reg(off, "read-only", f"Data signal of {name}")
            regs[f"{name}_ctrl"] = reg(off + 4, "read-only", f"Control signal of {name}",
                                       {f"{name}_ap_vld": {"bit_offset": 0, "bit_width": 1, "access": "read-only",
                                                           "description": ""}})
            off += 0x08
    return regs


def _make_fake_pynq_device_class():
    import pynq

    class FakePynqDevice(pynq.Device):
        """A ``REGISTER_RW`` pynq Device: the kernel's s_axilite registers plus DMA memory.

        * Host and device copies of every buffer are separate (Zynq DDR behind non-coherent caches):
          ``flush`` copies host -> device for exactly the bytes it names, ``invalidate`` device -> host.
        * Control register as Vitis HLS ``ap_ctrl_hs``: ap_idle is 1 after reset; writing ap_start while
          idle starts a job (scalars and addresses latched), clears ap_idle; the job ends after
          ``polls_to_done`` reads of the control register (never while ``hang`` is set, until
          :meth:`finish`): the executor runs then, ``status`` and its ap_vld are written, ap_done and
          ap_idle are set. ap_done and ap_vld are clear-on-read.
        * Writing ap_start or an argument register while a job runs is recorded in ``violations``.
        """

        def __init__(self, arch, executor=None, *, base=0xA000_0000, mem_base=0x4000_0000, polls_to_done=1):
            super().__init__("fake_sat")
            self.capabilities = {"REGISTER_RW": True}
            self.arch, self.base = arch, base
            self.executor = executor or default_executor(arch)
            self.bits = _ctrl_bits(arch)
            self.regs = bytearray(arch.regmap["address_range"])
            self._set_ctrl(self.bits["ap_idle"])
            self.polls_to_done, self.hang = polls_to_done, False
            self.writes: list[tuple[int, int]] = []
            self.ctrl_reads = 0
            self.syncs: list[tuple[str, int, int, int]] = []        # (kind, bo, offset, nbytes)
            self.buffers: list = []
            self._dev: dict[int, np.ndarray] = {}                   # bo id -> device copy
            self._addr: dict[int, int] = {}
            self._next = mem_base
            self.starts = 0
            self.violations: list[str] = []
            self._job = None
            self.rm = arch.regmap
            self._ctrl_off = self.rm["control"]["offset"]
            self._status = next((a for a in self.rm["args"] if a["kind"] == "scalar_out"), None)
            self._arg_ranges = [(a["offset"], a["offset"] + (0x0C if a["kind"] == "ptr" else 0x08))
                                for a in self.rm["args"] if a["kind"] != "scalar_out"]

        # ---- memory ----
        def allocate(self, shape, dtype, **kwargs):
            buf = pynq.buffer.PynqBuffer(shape, dtype, device=self, device_address=self._next, bo=len(self._dev) + 1,
                                         coherent=False)
            buf[...] = 0
            self._dev[buf.bo] = aligned_bytes(buf.nbytes, 4096)        # device memory: page-aligned, as CMA
            self._addr[buf.bo] = self._next
            self._next += (buf.nbytes + 0xFFF) & ~0xFFF
            self.buffers.append(buf)
            return buf

        def flush(self, bo, offset, vaddr, nbytes):
            self.syncs.append(("flush", bo, offset, nbytes))
            host = (ctypes.c_uint8 * nbytes).from_address(vaddr)
            self._dev[bo][offset:offset + nbytes] = np.frombuffer(host, np.uint8)

        def invalidate(self, bo, offset, vaddr, nbytes):
            self.syncs.append(("invalidate", bo, offset, nbytes))
            host = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(vaddr))
            host[:] = self._dev[bo][offset:offset + nbytes]

        def device_view(self, address: int):
            """Device memory from ``address`` to the end of its allocation (None for 0)."""
            if address == 0:
                return None
            for bo, start in self._addr.items():
                mem = self._dev[bo]
                if start <= address < start + mem.size:
                    return mem[address - start:]
            raise AssertionError(f"kernel given address {address:#x} that no allocated buffer contains")

        def device_bytes(self, buf) -> np.ndarray:
            return self._dev[buf.bo]

        # ---- registers ----
        def _set_ctrl(self, word):
            struct.pack_into("<I", self.regs, 0, word)

        def _reg(self, off):
            return struct.unpack_from("<I", self.regs, off)[0]

        def read_registers(self, address, length):
            off = address - self.base
            if off == self._ctrl_off:
                self.ctrl_reads += 1
                if self._job is not None and not self.hang:
                    self._job["polls"] -= 1
                    if self._job["polls"] <= 0:
                        self._complete()
                data = bytes(self.regs[off:off + length])
                self._set_ctrl(self._reg(off) & ~self.bits["ap_done"])          # ap_done: clear on read
                return data
            data = bytes(self.regs[off:off + length])
            if self._status is not None and off == self._status["vld_offset"]:
                struct.pack_into("<I", self.regs, off, 0)                        # ap_vld: clear on read
            return data

        def write_registers(self, address, data):
            off = address - self.base
            for i in range(0, len(data), 4):
                self.writes.append((off + i, struct.unpack_from("<I", data, i)[0]))
            if off == self._ctrl_off:
                if data[0] & self.bits["ap_start"]:
                    if self._job is not None:
                        self.violations.append("ap_start written while a job runs")
                        return
                    self._start()
                return
            if self._job is not None and any(lo <= off < hi for lo, hi in self._arg_ranges):
                self.violations.append(f"argument register {off:#x} written while a job runs")
            self.regs[off:off + len(data)] = data

        def reg_values(self) -> dict[str, int]:
            vals = {}
            for r in self.rm["args"]:
                if r["kind"] == "ptr":
                    vals[r["name"]] = self._reg(r["offset"]) | self._reg(r["offset"] + 4) << 32
                elif r["kind"] == "scalar":
                    vals[r["name"]] = self._reg(r["offset"])
            return vals

        def _start(self):
            self.starts += 1
            self._job = {"regs": self.reg_values(), "polls": self.polls_to_done}
            self._set_ctrl(0)                                   # running: not idle, not done

        def _complete(self):
            regs = self._job["regs"]
            ptrs = {r["name"]: regs[r["name"]] for r in self.rm["args"] if r["kind"] == "ptr"}
            scalars = {r["name"]: regs[r["name"]] for r in self.rm["args"] if r["kind"] == "scalar"}
            status = self.executor.execute(scalars["mode"], scalars,
                                           {n: self.device_view(a) for n, a in ptrs.items()}, ptrs)
            if self._status is not None:
                struct.pack_into("<I", self.regs, self._status["offset"], status & 0xFFFFFFFF)
                struct.pack_into("<I", self.regs, self._status["vld_offset"], 1)
            self._job = None
            self._set_ctrl(self.bits["ap_done"] | self.bits["ap_idle"])

        @property
        def running(self) -> bool:
            return self._job is not None

        def finish(self):
            """Let a hung job end (as if the kernel finally completed)."""
            self.hang = False
            if self._job is not None:
                self._complete()

        def reset_pl(self):
            """What reloading the bitstream does to the kernel: the job is gone, registers reset."""
            self._job, self.hang = None, False
            self.regs[:] = bytes(len(self.regs))
            self._set_ctrl(self.bits["ap_idle"])

    return FakePynqDevice


_FAKE_PYNQ_DEVICE = None


def FakePynqDevice(*args, **kwargs):   # noqa: N802 (a class made on first use: pynq is optional)
    global _FAKE_PYNQ_DEVICE
    if _FAKE_PYNQ_DEVICE is None:
        _FAKE_PYNQ_DEVICE = _make_fake_pynq_device_class()
    return _FAKE_PYNQ_DEVICE(*args, **kwargs)


class FakeOverlay:
    """What the pynq backend uses of a ``pynq.Overlay``: ``ip_dict`` (with the .hwh registers), the
    IP attribute, ``download()`` (reprograms the PL: resets the kernel)."""

    def __init__(self, device, ip, name="sat_kernel_0", registers=None, addr_range=None):
        self.device = device
        self.ip_dict = {name: {"type": device.arch.regmap["vlnv"], "phys_addr": device.base, "fullpath": name,
                               "addr_range": addr_range or 0x1_0000, "registers": registers if registers is not None
                               else hwh_registers(device.arch)},
                        "zynq_ultra_ps_e_0": {"type": "xilinx.com:ip:zynq_ultra_ps_e:3.4"}}
        setattr(self, name, ip)
        self.downloads = 0

    def download(self):
        self.downloads += 1
        self.device.reset_pl()


# ---- pyxrt ----------------------------------------------------------------------------------------

XCLBIN_MAGIC = b"xclbin2\0"


def write_fake_xclbin(path, arch, *, kernel=None, uuid=None) -> str:
    """A file the fake pyxrt.xclbin parses: the axlf magic, then this fake's own JSON metadata.

    (Not the real axlf layout: the real pyxrt would reject it, as it rejects any file without a valid
    axlf header; the fake rejects anything without the magic.)"""
    meta = {"uuid": uuid or str(_uuid.uuid4()), "kernel": kernel or arch.regmap["kernel"],
            "args": [{"name": a["name"], "kind": a["kind"], "offset": a["offset"], "bank": a.get("bank")}
                     for a in arch.regmap["args"]],
            "banks": sorted({a["bank"] for a in arch.regmap["args"] if a["kind"] == "ptr"}),
            "register_space": arch.regmap["address_range"]}
    with open(path, "wb") as f:
        f.write(XCLBIN_MAGIC + json.dumps(meta).encode())
    return str(path)


def _incompatible(fn, *args):
    return TypeError(f"{fn}(): incompatible function arguments. The following argument types are supported: ... "
                     f"Invoked with: {', '.join(repr(a) for a in args)}")


def fake_pyxrt(arch, executor=None, *, version=(2, 23), hang=False):
    """A module object standing in for ``pyxrt`` of XRT ``version`` (see the module docstring).

    Modelled from the binding and runtime source:
    * features by version: ``hw_context`` and ``device.register_xclbin`` from 2.16; ``kernel(device,
      uuid, name, cu_access_mode)`` and ``device.load_xclbin`` from 2.11 (2.9 has another signature);
      ``kernel.read_register`` only up to 2.11 (and, as in XRT, only on an exclusively opened CU);
      ``run.wait()`` without a timeout from 2.12; ``bo.sync(direction)`` without size/offset from 2.16;
    * pybind11 argument conversion: enums (bo flags, sync directions, cu_access_mode) only as enum
      members, never ints or strings; ``uuid`` only as a pyxrt.uuid; ``run.set_arg(i, int)`` only for
      a C ``int`` (signed 32 bit) and a bo; everything else is a TypeError; an index past the
      kernel's arguments an IndexError;
    * XRT itself does not check that a bo goes to a pointer argument or an int to a scalar: an int set
      on a pointer argument becomes its low 32 address bits, a bo on a scalar its low address bits;
    * ``kernel(*args)`` swallows every argument it cannot set and starts the run anyway;
    * bo: a host copy and a device copy; ``write``/``read``/``map`` touch the host copy, ``sync`` moves
      exactly the bytes it names; past-the-end accesses are RuntimeErrors;
    * runs: one compute unit, runs execute in start order; ``wait(ms)`` returns
      ERT_CMD_STATE_TIMEOUT on timeout and the run keeps going; ``wait(0)`` waits forever (raises
      here instead of hanging the test); from 2.23 destroying a running run aborts the process
      (recorded in ``module.fatal``).
    ``hang=True``: runs do not complete until ``module.finish()``.
    """
    px = types.ModuleType("pyxrt")
    px.__version_info__ = version
    px.fatal: list[str] = []
    executor = executor or default_executor(arch)
    state = types.SimpleNamespace(hang=hang, queue=[], devices=[], contexts=0, live_bos=0, allocations=0,
                                  starts=0)
    px._state = state

    class xclBOSyncDirection(enum.Enum):
        XCL_BO_SYNC_BO_TO_DEVICE = 0
        XCL_BO_SYNC_BO_FROM_DEVICE = 1

    class ert_cmd_state(enum.Enum):
        ERT_CMD_STATE_NEW = 1
        ERT_CMD_STATE_QUEUED = 2
        ERT_CMD_STATE_RUNNING = 3
        ERT_CMD_STATE_COMPLETED = 4
        ERT_CMD_STATE_ERROR = 5
        ERT_CMD_STATE_ABORT = 6
        ERT_CMD_STATE_SUBMITTED = 7
        ERT_CMD_STATE_TIMEOUT = 8

    px.xclBOSyncDirection, px.ert_cmd_state = xclBOSyncDirection, ert_cmd_state
    S = ert_cmd_state

    class uuid:
        def __init__(self, text):
            if not isinstance(text, str):
                raise _incompatible("uuid.__init__", text)
            self._text = text

        def to_string(self):
            return self._text

    class xclbin:
        def __init__(self, path):
            if not isinstance(path, str):
                raise _incompatible("xclbin.__init__", path)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise RuntimeError(f"Could not open {path} for reading") from e
            if not data.startswith(XCLBIN_MAGIC):
                raise RuntimeError(f"Invalid xclbin: {path}")
            self.meta = json.loads(data[len(XCLBIN_MAGIC):])

        def get_uuid(self):
            return uuid(self.meta["uuid"])

    class device:
        def __init__(self, index=0):
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise _incompatible("device.__init__", index)
            if index != 0:
                raise RuntimeError(f"Could not open device with index '{index}'")
            self.xclbins: dict[str, dict] = {}
            self.loaded = None
            self._next = {}
            state.devices.append(self)

        def _register(self, xb):
            if not isinstance(xb, xclbin):
                raise _incompatible("register_xclbin", xb)
            self.xclbins[xb.meta["uuid"]] = xb.meta
            return uuid(xb.meta["uuid"])

        def load_xclbin(self, xb):
            if isinstance(xb, str):
                xb = xclbin(xb)
            u = self._register(xb)
            self.loaded = xb.meta["uuid"]
            return u

        def _address(self, bank, nbytes):
            start = self._next.get(bank, (bank + 1) << 34)
            self._next[bank] = start + ((nbytes + 0xFFF) & ~0xFFF)
            return start

    if version >= (2, 16):
        device.register_xclbin = device._register

        class hw_context:
            def __init__(self, dev, u):
                if not isinstance(dev, device) or not isinstance(u, uuid):
                    raise _incompatible("hw_context.__init__", dev, u)
                if u.to_string() not in dev.xclbins:
                    raise RuntimeError("xclbin not registered with device")
                self.device, self.meta = dev, dev.xclbins[u.to_string()]
                state.contexts += 1
                self._open = True

            def __del__(self):
                if getattr(self, "_open", False):
                    state.contexts -= 1

        px.hw_context = hw_context

    class bo:
        class flags(enum.Enum):
            normal = 0
            cacheable = 1
            device_only = 2
            host_only = 3

        def __init__(self, dev, size, flags, group):
            if not isinstance(dev, device) or not isinstance(size, int) or not isinstance(flags, bo.flags) \
                    or not isinstance(group, int) or isinstance(size, bool):
                raise _incompatible("bo.__init__", dev, size, flags, group)
            if size <= 0:
                raise RuntimeError("size must be a positive number")
            self.group, self._size = group, size
            self.host = np.zeros(size, np.uint8)
            self.dev = aligned_bytes(size, 4096)     # device memory: page-aligned (a C executor checks alignment)
            self.syncs = []
            self._address = dev._address(group, size)
            state.live_bos += 1
            state.allocations += 1

        def __del__(self):
            state.live_bos -= 1

        def size(self):
            return self._size

        def address(self):
            return self._address

        def write(self, data, seek):
            mv = memoryview(data)
            if not mv.c_contiguous:
                raise ValueError("fake pyxrt: non-contiguous buffer (real pyxrt writes the wrong bytes)")
            raw = np.frombuffer(mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv, np.uint8)
            if seek + raw.size > self._size:
                raise RuntimeError("attempting to write past buffer size")
            self.host[seek:seek + raw.size] = raw

        def read(self, size, skip):
            if skip + size > self._size:
                raise RuntimeError("attempting to read past buffer size")
            return self.host[skip:skip + size].view(np.int8).copy()      # py::array_t<char>

        def map(self):
            return memoryview(self.host)

        def sync(self, direction, *size_offset):
            if not isinstance(direction, xclBOSyncDirection):
                raise _incompatible("sync", direction, *size_offset)
            if not size_offset:
                if version < (2, 16):
                    raise _incompatible("sync", direction)
                size, offset = self._size, 0
            else:
                if len(size_offset) != 2 or not all(isinstance(v, int) and v >= 0 for v in size_offset):
                    raise _incompatible("sync", direction, *size_offset)
                size, offset = size_offset
            if size == 0:
                raise RuntimeError("size must be a positive number")
            if offset > self._size or size > self._size - offset:
                raise RuntimeError("offset exceeds buffer size")
            self.syncs.append((direction.name, size, offset))
            if direction is xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
                self.dev[offset:offset + size] = self.host[offset:offset + size]
            else:
                self.host[offset:offset + size] = self.dev[offset:offset + size]

    bo.normal = bo.flags.normal             # export_values()

    args = arch.regmap["args"]

    class run:
        def __init__(self, k):
            self.kernel = k
            self.payload = {i: 0 for i in range(len(args))}
            self.bos = {}
            self._state = S.ERT_CMD_STATE_NEW

        def set_arg(self, i, v):
            if not isinstance(i, int):
                raise _incompatible("set_arg", i, v)
            if isinstance(v, bo):
                value = v.address()
            elif isinstance(v, (int, np.integer)) and not isinstance(v, float) and -(1 << 31) <= int(v) < (1 << 31):
                value = int(v) & 0xFFFFFFFF
            else:
                raise _incompatible("set_arg", i, v)
            if not 0 <= i < len(args):
                raise IndexError("vector::_M_range_check")
            if args[i]["kind"] == "ptr" and not isinstance(v, bo):
                self.payload[i] = (self.payload[i] & ~0xFFFFFFFF) | value     # low 4 bytes of the address
            elif args[i]["kind"] != "ptr" and isinstance(v, bo):
                self.payload[i] = value & 0xFFFFFFFF
            else:
                self.payload[i] = value
            if isinstance(v, bo):
                self.bos[i] = v

        def start(self):
            if self._state in (S.ERT_CMD_STATE_NEW, S.ERT_CMD_STATE_COMPLETED, S.ERT_CMD_STATE_ERROR):
                state.starts += 1
                self._state = S.ERT_CMD_STATE_QUEUED if state.queue else S.ERT_CMD_STATE_RUNNING
                self.snapshot = dict(self.payload)
                state.queue.append(self)
                if not state.hang:
                    _drain()
            else:
                raise RuntimeError("bad command state, can't launch")

        def _complete(self):
            regs = {args[i]["name"]: v for i, v in self.snapshot.items()}
            ptrs = {a["name"]: regs[a["name"]] for a in args if a["kind"] == "ptr"}
            views = {}
            by_addr = {b.address(): b for b in self.bos.values()}
            for name, addr in ptrs.items():
                b = by_addr.get(addr)
                views[name] = None if b is None else b.dev
            scalars = {a["name"]: regs[a["name"]] for a in args if a["kind"] == "scalar"}
            self.status = executor.execute(scalars["mode"], scalars, views, ptrs)
            self.kernel.last_status = self.status
            self._state = S.ERT_CMD_STATE_COMPLETED

        def wait(self, *timeout):
            if not timeout and version < (2, 12):
                raise _incompatible("wait")
            if timeout and (not isinstance(timeout[0], int) or timeout[0] < 0 or timeout[0] >= 1 << 32):
                raise _incompatible("wait", *timeout)
            if self._state is S.ERT_CMD_STATE_NEW:
                raise RuntimeError("run not started")
            if self._state is S.ERT_CMD_STATE_COMPLETED:
                return self._state
            if not timeout or timeout[0] == 0:
                raise AssertionError("fake pyxrt: wait(0) / wait() on a run that never finishes would hang forever")
            return S.ERT_CMD_STATE_TIMEOUT

        def state(self):
            return self._state

        def __del__(self):
            if self._state in (S.ERT_CMD_STATE_QUEUED, S.ERT_CMD_STATE_RUNNING) and version >= (2, 23):
                px.fatal.append("xrt::run destructed while command is still in progress (std::abort)")

    def _drain():
        while state.queue and not state.hang:
            r = state.queue.pop(0)
            r._state = S.ERT_CMD_STATE_RUNNING
            r._complete()

    def finish():
        """Let hung runs complete (in start order) and new runs complete at once again."""
        state.hang = False
        _drain()
    px.finish = finish

    class kernel:
        class cu_access_mode(enum.Enum):
            exclusive = 0
            shared = 1
            none = 2

        def __init__(self, *a):
            if version < (2, 11):
                raise _incompatible("kernel.__init__", *a)      # 2.9: (device, uuid as uint8 array, name, bool)
            if version >= (2, 16) and len(a) == 2 and isinstance(a[0], px.hw_context) and isinstance(a[1], str):
                ctx, name = a
                meta, self.mode = ctx.meta, kernel.cu_access_mode.shared
                self._ctx = ctx
            elif len(a) in (3, 4) and isinstance(a[0], device) and isinstance(a[1], uuid) and isinstance(a[2], str) \
                    and (len(a) == 4 or version >= (2, 13)) and (len(a) == 3 or isinstance(a[3], kernel.cu_access_mode)):
                dev, u, name = a[:3]
                self.mode = a[3] if len(a) == 4 else kernel.cu_access_mode.shared
                if dev.loaded != u.to_string():
                    raise RuntimeError("xclbin uuid does not match the xclbin loaded on the device")
                meta = dev.xclbins[u.to_string()]
                self._ctx = None
            else:
                raise _incompatible("kernel.__init__", *a)
            if name != meta["kernel"]:
                raise RuntimeError(f"No such compute unit '{name}'")
            self.meta = meta
            self.last_status = None

        def group_id(self, i):
            a = args[i]
            if a["kind"] != "ptr":
                raise RuntimeError(f"argument {i} is not a global memory argument")
            return a["bank"]

        def __call__(self, *items):
            r = run(self)
            for i, item in enumerate(items):
                try:
                    r.set_arg(i, item)
                except Exception:      # pyxrt: catch (std::exception) {} -- swallowed, then start anyway
                    pass
            r.start()
            return r

    if version <= (2, 11):
        def read_register(self, offset):
            if self.mode is not kernel.cu_access_mode.exclusive:
                raise RuntimeError("Cannot read or write kernel with shared access")
            if offset + 4 > self.meta["register_space"]:
                raise IndexError("Cannot read or write outside kernel register space")
            st = next((a for a in args if a["kind"] == "scalar_out"), None)
            if st is not None and offset == st["offset"]:
                return int(self.last_status or 0)
            return 0
        kernel.read_register = read_register

    if version < (2, 11):                     # 2.9: kernel(device, uuid-array, name, bool); no cu_access_mode
        del kernel.cu_access_mode

    px.uuid, px.xclbin, px.device, px.bo, px.kernel, px.run = uuid, xclbin, device, bo, kernel, run
    return px


def install_fake_pyxrt(monkeypatch, px):
    monkeypatch.setitem(sys.modules, "pyxrt", px)
    return px
