"""The xrt backend: the kernel on an Alveo / VCU1525 card through XRT's Python binding ``pyxrt``.

``pyxrt`` ships with XRT (not on PyPI) and is imported only when this backend is opened; without
XRT the error says so. Kernel arguments are passed positionally in regmap.json order (XRT maps
them to the register offsets recorded in the .xclbin); buffers are ``pyxrt.bo`` objects in the
memory bank of their argument (``kernel.group_id(i)``), reused across calls while big enough.
A run that does not complete within ``timeout_s`` raises :class:`DeviceTimeoutError`.

Not run on XRT here (no XRT, no card): tests/test_hostpy_xrt.py drives it through a fake ``pyxrt``
module whose kernel runs the C-simulated kernel on the buffer objects' memory.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..archdir import Arch
from ..device import BufferPool, Device, KernelCall, output_layout
from ..errors import BackendUnavailableError, DeviceTimeoutError, KernelError


# ert_cmd_state names of a run that has not finished when wait(timeout) returns.
_NOT_FINISHED = ("ERT_CMD_STATE_NEW", "ERT_CMD_STATE_QUEUED", "ERT_CMD_STATE_SUBMITTED", "ERT_CMD_STATE_RUNNING",
                 "ERT_CMD_STATE_TIMEOUT")


def _import_pyxrt():
    try:
        import pyxrt
    except ImportError as e:
        raise BackendUnavailableError("the xrt backend needs XRT's Python binding 'pyxrt' (install XRT and "
                                      f"source /opt/xilinx/xrt/setup.sh): {e}") from e
    return pyxrt


class _Bo:
    """A pyxrt.bo with the dtype/size bookkeeping BufferPool expects."""

    def __init__(self, pyxrt, device, kernel, arg_index: int, count: int, dtype: np.dtype):
        self.dtype, self.size = np.dtype(dtype), count
        self.bo = pyxrt.bo(device, count * self.dtype.itemsize, pyxrt.bo.normal, kernel.group_id(arg_index))


class XrtDevice(Device):
    backend = "xrt"

    def __init__(self, arch: Arch, *, xclbin: str | Path | None = None, device_index: int = 0,
                 timeout_s: float = 5.0):
        super().__init__(arch)
        self.pyxrt = _import_pyxrt()
        if xclbin is None or not Path(xclbin).is_file():
            raise BackendUnavailableError(f"the xrt backend needs xclbin=<path to the built .xclbin>, got {xclbin!r}")
        px = self.pyxrt
        self.device = px.device(device_index)
        xb = px.xclbin(str(xclbin))
        self.device.register_xclbin(xb)
        self.context = px.hw_context(self.device, xb.get_uuid())
        self.kernel = px.kernel(self.context, arch.regmap["kernel"])
        self.timeout_ms = int(timeout_s * 1000)
        self._arg_index = {name: i for i, name in enumerate(arch.arg_names)}
        self._pools = {}

    def _bo(self, name: str, count: int, dtype) -> _Bo:
        pool = self._pools.setdefault(name, BufferPool(
            lambda n, dt, i=self._arg_index[name]: _Bo(self.pyxrt, self.device, self.kernel, i, n, dt)))
        return pool.get(name, count, dtype)

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        px = self.pyxrt
        scalars = {"mode": self.arch.mode_code(call.mode), "rows": call.rows, "k": call.k, "cols": call.cols}
        bos = {}
        for name in ("a_val", "a_idx", "b"):
            data = getattr(call, name)
            if data is not None and name in self._arg_index:
                bos[name] = self._bo(name, data.size, data.dtype)
                bos[name].bo.write(np.ascontiguousarray(data).view(np.uint8), 0)
                bos[name].bo.sync(px.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
        layout = output_layout(self.arch, call)
        for name, (count, dtype) in layout.items():
            bos[name] = self._bo(name, count, dtype)
        # Unused pointer arguments still need a buffer object; a 1-element one of their own.
        args = []
        for reg in self.arch.regmap["args"]:
            if reg["kind"] == "scalar":
                args.append(scalars[reg["name"]])
            else:
                args.append((bos.get(reg["name"]) or self._bo(reg["name"], 1, np.uint8)).bo)
        run = self.kernel(*args)
        state = run.wait(self.timeout_ms)
        if state != px.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            name = getattr(state, "name", str(state))
            if name in _NOT_FINISHED:
                raise DeviceTimeoutError(f"{self.arch.spec.name}: kernel run not done within {self.timeout_ms} ms "
                                         f"({name})")
            raise KernelError(f"{self.arch.spec.name}: kernel run ended in state {name}")
        out = {}
        for name, (count, dtype) in layout.items():
            b = bos[name]
            b.bo.sync(px.xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE)
            out[name] = np.frombuffer(bytes(b.bo.read(count * np.dtype(dtype).itemsize, 0)), dtype=dtype).copy()
        return out
