"""The xrt backend: the kernel on an Alveo / VCU1525 card through XRT's Python binding ``pyxrt``.

``pyxrt`` ships with XRT (not on PyPI) and is imported only when this backend is opened. What it
relies on, per pyxrt's binding source (Xilinx/XRT src/python/pybind11/src/pyxrt.cpp) and XRT's
runtime at the release tags 2.9 ... 2.23:

* **Opening** by feature, not by version number: where pyxrt has ``hw_context`` and
  ``device.register_xclbin`` (XRT >= 2.16) the xclbin is registered and the kernel opened in a
  hardware context; before that, ``device.load_xclbin`` and ``kernel(device, uuid, name,
  cu_access_mode)`` (XRT 2.11 - 2.15); older pyxrt (2.9's kernel takes a uuid array and a bool)
  is refused with :class:`BackendUnavailableError` naming the version needed. An xclbin pyxrt
  cannot parse is a BackendUnavailableError too.
* **Arguments** are set one by one (``run.set_arg(i, value)``), never through ``kernel(*args)``,
  which swallows every argument it cannot set and starts the run anyway. Each value is checked
  first: pointer arguments take a ``pyxrt.bo``, scalar arguments a 32-bit unsigned value passed as
  the C ``int`` of the same bits (the only integer pyxrt's ``set_arg`` accepts); XRT itself does not
  check kinds (an int on a pointer argument would become its low address word), so this does. A
  rejected argument is a :class:`KernelError` naming it, and nothing is started.
* **Buffers** are ``pyxrt.bo`` objects in the memory bank of their argument
  (``kernel.group_id(i)``), pooled by argument name (:class:`hostpy.device.BufferPool`); unused
  pointer arguments get a placeholder, one per bank. Only the bytes a call uses are written and
  synced (``bo.sync(direction, size, offset)``, the only sync form every pyxrt has).
* **Timeouts**: ``run.wait(ms)`` with at least 1 ms (``wait(0)`` means forever). On timeout XRT
  leaves the kernel running and pyxrt has no abort, so the run object is kept (from XRT 2.23 on,
  destroying a running run aborts the process), its buffers leave the pool for good (a late write
  of the old run can never land in a new call's buffers), and until ``run.state()`` says it ended
  every call raises :class:`hostpy.errors.DeviceBusyError`. :meth:`XrtDevice.wait_idle` waits it
  out; stopping it needs a card reset (``xbutil reset``) outside this process. ``close()``
  releases the runs, buffers, kernel, hardware context and device; what it cannot release (a run
  that still runs) it keeps alive until the process exits and says so in a RuntimeWarning.
* **status** (the kernel's output register): no pyxrt from 2.12 on binds a register read
  (``xrt::kernel::read_register`` / ``xrt::run::get_arg`` are C++ only). pyxrt up to 2.11 binds
  ``kernel.read_register``, which XRT allows only on a compute unit opened exclusively: there the
  kernel is opened with ``cu_access_mode.exclusive`` and ``status`` is read after every run. On
  every other pyxrt the backend evaluates the kernel's documented refusal rules on the host before
  starting (:func:`host_status`: mode, sizes, word alignment of the bo addresses, n) and raises the
  same :class:`KernelError`; ``status_source`` says which applies. A refusal the host does not
  predict is caught afterwards: the output regions are filled with :data:`POISON` bytes before the
  run (one extra host-to-device sync of the output bytes), and an output region the kernel left all
  POISON is a :class:`KernelError` (``poison_outputs=False`` turns this off).
"""
from __future__ import annotations

import ctypes
import math
import time
import warnings
from pathlib import Path

import numpy as np

from ..abi import Abi
from ..archdir import Arch
from ..device import (BufferPool, Device, DeviceBusyError, KernelCall, check_status, output_layout,
                      scalar_values)
from ..errors import BackendUnavailableError, DeviceTimeoutError, KernelError

# Byte the output regions are filled with before a run when the status register cannot be read: a
# refused job writes no memory, so an output region still all POISON afterwards was not written (no
# int32/int48 accumulator of int8/int16 operands within the kernel's limits is 0xA5A5..., and index
# records leave the rest of their word zero).
POISON = 0xA5

# ert_cmd_state names of a run that is still queued or running.
_NOT_FINISHED = ("ERT_CMD_STATE_NEW", "ERT_CMD_STATE_QUEUED", "ERT_CMD_STATE_SUBMITTED", "ERT_CMD_STATE_RUNNING",
                 "ERT_CMD_STATE_TIMEOUT")

# Runs that a closed device could not release because they were still running, with every object
# they use. Each entry is also given one extra reference so that not even interpreter shutdown
# destroys it (XRT >= 2.23 aborts the process when a running run is destroyed).
LIVE_RUNS: list = []


def _import_pyxrt():
    try:
        import pyxrt
    except ImportError as e:
        raise BackendUnavailableError("the xrt backend needs XRT's Python binding 'pyxrt' (install XRT and "
                                      f"source /opt/xilinx/xrt/setup.sh): {e}") from e
    return pyxrt


def pyxrt_api(px) -> str:
    """Which way of opening a kernel this pyxrt offers: "hw_context" (XRT >= 2.16) or "legacy" (2.11 - 2.15)."""
    if hasattr(px, "hw_context") and hasattr(px.device, "register_xclbin"):
        return "hw_context"
    if hasattr(px.device, "load_xclbin") and hasattr(px.kernel, "cu_access_mode"):
        return "legacy"
    raise BackendUnavailableError(
        "this pyxrt is too old for the xrt backend: it has neither hw_context/register_xclbin (XRT >= 2.16) nor "
        "kernel(device, uuid, name, cu_access_mode) with load_xclbin (XRT >= 2.11); install XRT 2.16 or newer")


def host_status(arch: Arch, call: KernelCall, addresses: dict[str, int]) -> int:
    """The ``status`` the kernel would end ``call`` with, from regmap.json's refusal rules (0 = it runs).

    Used where pyxrt cannot read the status register. ``addresses``: device address of every pointer
    argument the call's mode uses.
    """
    rm, bits = arch.regmap, arch.regmap["status_bits"]
    status = 0
    if call.mode not in rm["modes"]:
        return 1 << bits["bad_mode"]
    lim = rm["limits"]
    if not (1 <= call.rows <= lim["max_dim"] and 1 <= call.k <= lim["max_k"]) or \
            (call.mode != "PRUNE" and not 1 <= call.cols <= lim["max_dim"]):
        status |= 1 << bits["bad_size"]
    word = rm["abi"]["word_bytes"]
    if any(addresses[name] % word for name in addresses):
        status |= 1 << bits["misaligned"]
    n = scalar_values(arch, call)["n"]
    if call.mode in ("SPARSE", "PRUNE") and n not in rm["nm"]["runtime_n"]:
        status |= 1 << bits["bad_n"]
    return status


def _int_arg(name: str, value) -> int:
    """A 32-bit unsigned register value as the C ``int`` pyxrt's set_arg takes (same bits)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise KernelError(f"argument {name}: {value!r} is not an integer")
    value = int(value)
    if not 0 <= value < 1 << 32:
        raise KernelError(f"argument {name}={value} does not fit its 32-bit register")
    return value - (1 << 32) if value >= 1 << 31 else value


class _Bo:
    """A pyxrt.bo with the dtype/size bookkeeping BufferPool expects."""

    def __init__(self, pyxrt, device, nbytes: int, dtype, group: int):
        self.dtype = np.dtype(dtype)
        self.size = nbytes // self.dtype.itemsize
        self.nbytes, self.group = nbytes, group
        self.bo = pyxrt.bo(device, int(nbytes), pyxrt.bo.normal, int(group))


class _Pending:
    """A run that timed out, with everything it uses (kept alive until it ends)."""

    def __init__(self, run, buffers, job: str, device, kernel, context):
        self.run, self.buffers, self.job = run, buffers, job
        self.device, self.kernel, self.context = device, kernel, context
        self.since = time.monotonic()


class XrtDevice(Device):
    backend = "xrt"

    def __init__(self, arch: Arch, *, xclbin: str | Path | None = None, device_index: int = 0,
                 timeout_s: float = 5.0, poison_outputs: bool = True):
        super().__init__(arch)
        self.pyxrt = px = _import_pyxrt()
        if xclbin is None or not Path(xclbin).is_file():
            raise BackendUnavailableError(f"the xrt backend needs xclbin=<path to the built .xclbin>, got {xclbin!r}")
        self.api = pyxrt_api(px)
        name = arch.regmap["kernel"]
        self.device = px.device(int(device_index))
        try:
            xb = px.xclbin(str(xclbin))
        except RuntimeError as e:
            raise BackendUnavailableError(f"XRT cannot read {xclbin} as an xclbin: {e}") from e
        self.context = None
        can_read = hasattr(px.kernel, "read_register")
        if self.api == "hw_context":
            self.context = px.hw_context(self.device, self.device.register_xclbin(xb))
            self.kernel = px.kernel(self.context, name)
        else:
            mode = px.kernel.cu_access_mode.exclusive if can_read else px.kernel.cu_access_mode.shared
            self.kernel = px.kernel(self.device, self.device.load_xclbin(xb), name, mode)
        self.status_source = "register" if can_read and self.api == "legacy" else "host"
        self.poison_outputs = bool(poison_outputs)
        self.timeout_ms = min(max(1, math.ceil(float(timeout_s) * 1000)), (1 << 32) - 1)
        self._args = arch.regmap["args"]
        self._index = {a["name"]: i for i, a in enumerate(self._args)}
        self._status = next((a for a in self._args if a["kind"] == "scalar_out" and a["name"] == "status"), None)
        self._word = arch.regmap["abi"]["word_bytes"]
        self._pool = BufferPool(None, placeholder_alloc=lambda group: _Bo(px, self.device, self._word, np.uint8, group))
        self._pending: _Pending | None = None
        self._closed = False
        self.unreleased: list[str] = []

    # ---- buffers ----
    def _alloc_for(self, name: str):
        group = self.kernel.group_id(self._index[name])
        return lambda count, dtype: _Bo(self.pyxrt, self.device, count * np.dtype(dtype).itemsize, dtype, group)

    def _sync(self, b: _Bo, direction: str, nbytes: int) -> None:
        b.bo.sync(getattr(self.pyxrt.xclBOSyncDirection, direction), int(nbytes), 0)

    # ---- a timed-out run ----
    def _finished(self, state) -> bool:
        return getattr(state, "name", str(state)) not in _NOT_FINISHED

    def _check_pending(self) -> None:
        p = self._pending
        if p is None:
            return
        if not self._finished(p.run.state()):
            age = time.monotonic() - p.since
            raise DeviceBusyError(
                f"{self.arch.spec.name}: the kernel is still running {p.job}, which timed out {age:.1f} s ago "
                f"(state {p.run.state().name}); nothing was started. Wait for it (device.wait_idle()) or reset "
                f"the card (xbutil reset) and reopen.")
        self._pending = None            # it ended: the run may be destroyed and its buffers freed

    def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait for a run that timed out to end (then calls are accepted again)."""
        p = self._pending
        if p is None:
            return
        ms = self.timeout_ms if timeout_s is None else min(max(1, math.ceil(float(timeout_s) * 1000)), (1 << 32) - 1)
        state = p.run.wait(ms)
        if not self._finished(state):
            raise DeviceTimeoutError(f"{self.arch.spec.name}: {p.job} is still running after another {ms} ms")
        self._pending = None

    # ---- one call ----
    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        if self._closed:
            raise BackendUnavailableError("the xrt device is closed")
        self._check_pending()
        px = self.pyxrt
        job = f"{call.mode} rows={call.rows} k={call.k} cols={call.cols}"
        scalars = scalar_values(self.arch, call)
        ints = {r["name"]: _int_arg(r["name"], scalars[r["name"]]) for r in self._args if r["kind"] == "scalar"}
        inputs = call.inputs()
        layout = output_layout(self.arch, call)
        bos: dict[str, _Bo] = {}
        for name, data in inputs.items():
            bos[name] = self._pool.get(name, data.size, np.uint8, alloc=self._alloc_for(name))
        for name, (count, dtype) in layout.items():
            bos[name] = self._pool.get(name, count, dtype, alloc=self._alloc_for(name))
        if self.status_source == "host":            # refused before anything is written or started
            check_status(self.arch, host_status(self.arch, call, {n: b.bo.address() for n, b in bos.items()}), call)
        for name, data in inputs.items():
            b = bos[name]
            b.bo.write(np.ascontiguousarray(data, dtype=np.uint8), 0)
            self._sync(b, "XCL_BO_SYNC_BO_TO_DEVICE", data.size)
        if self.status_source == "host" and self.poison_outputs:
            for name, (count, _) in layout.items():     # a refused job writes nothing: see it afterwards
                bos[name].bo.write(np.full(count, POISON, np.uint8), 0)
                self._sync(bos[name], "XCL_BO_SYNC_BO_TO_DEVICE", count)
        run = px.run(self.kernel)
        for i, reg in enumerate(self._args):
            name = reg["name"]
            if reg["kind"] == "ptr":
                b = bos.get(name) or self._pool.placeholder(self.kernel.group_id(i))
                value = b.bo
            elif reg["kind"] == "scalar":
                value = ints[name]
            else:
                continue                    # output scalar: read back, never set
            try:
                run.set_arg(i, value)
            except (TypeError, IndexError, RuntimeError, ValueError) as e:
                raise KernelError(f"{self.arch.spec.name}: XRT refused argument {i} ({name}) of {job}: {e}") from e
        run.start()
        try:
            state = run.wait(self.timeout_ms)
        except BaseException:           # e.g. KeyboardInterrupt: never let a running run be destroyed
            if not self._finished(run.state()):
                self._pending = _Pending(run, self._pool.detach(bos), job, self.device, self.kernel, self.context)
            raise
        if not self._finished(state):
            self._pending = _Pending(run, self._pool.detach(bos), job, self.device, self.kernel, self.context)
            raise DeviceTimeoutError(
                f"{self.arch.spec.name}: kernel run of {job} not done within {self.timeout_ms} ms "
                f"({getattr(state, 'name', state)}); XRT cannot stop it: the run and its buffers are kept until it "
                f"ends, and calls raise DeviceBusyError until then (device.wait_idle() waits for it)")
        if state != px.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            raise KernelError(f"{self.arch.spec.name}: kernel run of {job} ended in state {getattr(state, 'name', state)}")
        if self.status_source == "register" and self._status is not None:
            check_status(self.arch, self.kernel.read_register(self._status["offset"]), call)
        out = {}
        for name, (count, dtype) in layout.items():
            b = bos[name]
            self._sync(b, "XCL_BO_SYNC_BO_FROM_DEVICE", count)
            out[name] = np.asarray(b.bo.read(count, 0)).view(np.uint8).copy()
        if self.status_source == "host" and self.poison_outputs:
            unwritten = [name for name, data in out.items() if data.size and (data == POISON).all()]
            if unwritten:
                raise KernelError(f"{self.arch.spec.name}: the kernel wrote none of {', '.join(unwritten)} for {job}: it "
                                  f"refused the job for a reason the host did not predict (this pyxrt cannot read "
                                  f"the status register)")
        return out

    # ---- release ----
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        p = self._pending
        if p is not None and not self._finished(p.run.state()):
            nbytes = sum(b.nbytes for b in p.buffers.values())
            msg = (f"{self.arch.spec.name}: close() could not release the run of {p.job}, which timed out "
                   f"{time.monotonic() - p.since:.1f} s ago and is still running ({p.run.state().name}): "
                   f"destroying it would abort the process on XRT >= 2.23 and free {len(p.buffers)} buffers "
                   f"({nbytes} bytes) it may still write. The run, those buffers, the kernel, its hardware context "
                   f"and the device stay open until the process exits; reset the card (xbutil reset) to stop the "
                   f"kernel.")
            self.unreleased.append(msg)
            LIVE_RUNS.append(p)
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(p))     # survives interpreter shutdown too
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
        self._pending = None
        self._pool.clear()              # buffers first, then the kernel, the context, the device
        self.kernel = None
        self.context = None
        self.device = None
