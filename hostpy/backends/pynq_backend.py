"""The pynq backend: the kernel on a Zynq/Kria board through PYNQ.

* The kernel IP is found in the overlay by its VLNV (``xilinx.com:hls:<kernel>:1.0``, the Vitis HLS
  default for the kernel name in regmap.json) and bound to :class:`SatKernelDriver`, a
  ``pynq.DefaultIP`` subclass with ``bindto`` that VLNV.
* Buffers come from ``pynq.allocate`` (one per kernel argument, reused across calls while big
  enough), are flushed before the start and invalidated after done.
* Registers are programmed from regmap.json only: every pointer argument's device address goes to
  its offset (low word) and offset+4 (high word); scalars to their offset; then ap_start is set in
  the control register and ap_done is polled with a timeout (:class:`DeviceTimeoutError`, never a
  hang). Unused pointer arguments get address 0.

Seams for testing without a board: ``ip=`` takes any object with ``read(offset)``/``write(offset,
value)`` (e.g. a SatKernelDriver over a mock ``pynq.Device``), ``device=`` the pynq Device that
buffers are allocated on.
"""
from __future__ import annotations

import time

import numpy as np

from ..archdir import Arch
from ..device import BufferPool, Device, KernelCall, output_layout
from ..errors import ArchError, BackendUnavailableError, DeviceTimeoutError

try:
    import pynq
except ImportError as _e:  # hostpy itself never needs pynq; only this backend does
    raise BackendUnavailableError(f"the pynq backend needs the 'pynq' package (pip install pynq==4.0.0): {_e}") from _e

KERNEL_NAME = "sat_kernel"           # gen.regmap.KERNEL_NAME; regmap.json["kernel"] is checked against it


def kernel_vlnv(kernel: str) -> str:
    """VLNV Vitis HLS gives an exported kernel named ``kernel`` (vendor xilinx.com, library hls, 1.0)."""
    return f"xilinx.com:hls:{kernel}:1.0"


class SatKernelDriver(pynq.DefaultIP):
    """PYNQ driver bound to the satgen kernel IP (register access only; programming is in PynqDevice)."""

    bindto = [kernel_vlnv(KERNEL_NAME)]

    def __init__(self, description):
        super().__init__(description=description)


def find_kernel_ip(overlay, arch: Arch):
    """The overlay attribute of the IP whose VLNV is the kernel's."""
    vlnv = arch.regmap.get("vlnv") or kernel_vlnv(arch.regmap["kernel"])     # regmap.json names the IP
    names = sorted(name for name, d in overlay.ip_dict.items() if d.get("type") == vlnv)
    if not names:
        raise ArchError(f"the overlay has no IP of type {vlnv}; IPs: {', '.join(sorted(overlay.ip_dict)) or 'none'}")
    if len(names) > 1:
        raise ArchError(f"the overlay has several {vlnv} IPs ({', '.join(names)}); pass ip=overlay.<name>")
    ip = overlay
    for part in names[0].split("/"):
        ip = getattr(ip, part)
    return ip


class PynqDevice(Device):
    backend = "pynq"

    def __init__(self, arch: Arch, *, bitfile=None, overlay=None, ip=None, device=None,
                 timeout_s: float = 5.0, poll_interval_s: float = 0.0):
        super().__init__(arch)
        if arch.regmap["kernel"] != KERNEL_NAME:
            raise ArchError(f"regmap.json names kernel {arch.regmap['kernel']!r}, this driver binds {KERNEL_NAME!r}")
        if ip is None:
            if overlay is None:
                if bitfile is None:
                    raise BackendUnavailableError("the pynq backend needs bitfile=<path to .bit with its .hwh>, "
                                                  "overlay= or ip=")
                overlay = pynq.Overlay(str(bitfile), **({"device": device} if device is not None else {}))
            ip = find_kernel_ip(overlay, arch)
        self.ip = ip
        self.pynq_device = device
        self.timeout_s = float(timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        self._pool = BufferPool(self._allocate)
        rm = arch.regmap
        self._ctrl = rm["control"]["offset"]
        self._start_bit = 1 << rm["control"]["bits"]["ap_start"]
        self._done_bit = 1 << rm["control"]["bits"]["ap_done"]

    def _allocate(self, count: int, dtype: np.dtype):
        return pynq.allocate((count,), dtype=dtype, target=self.pynq_device)

    def _write_regs(self, values: dict[str, int]) -> None:
        for reg in self.arch.regmap["args"]:
            value = int(values.get(reg["name"], 0))
            if reg["kind"] == "ptr":
                self.ip.write(reg["offset"], value & 0xFFFFFFFF)
                self.ip.write(reg["offset"] + 4, (value >> 32) & 0xFFFFFFFF)
            else:
                self.ip.write(reg["offset"], value & 0xFFFFFFFF)

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        values = {"mode": self.arch.mode_code(call.mode), "rows": call.rows, "k": call.k, "cols": call.cols}
        for name in ("a_val", "a_idx", "b"):
            data = getattr(call, name)
            if data is None:
                continue
            buf = self._pool.get(name, data.size, data.dtype)
            buf[:data.size] = data
            buf.sync_to_device()
            values[name] = buf.device_address
        outs = {}
        for name, (count, dtype) in output_layout(self.arch, call).items():
            outs[name] = (self._pool.get(name, count, dtype), count)
            values[name] = outs[name][0].device_address
        self._write_regs(values)
        self.ip.write(self._ctrl, self._start_bit)
        self._wait_done(call)
        result = {}
        for name, (buf, count) in outs.items():
            buf.sync_from_device()
            result[name] = np.array(buf[:count])
        return result

    def _wait_done(self, call: KernelCall) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not self.ip.read(self._ctrl) & self._done_bit:
            if time.monotonic() > deadline:
                raise DeviceTimeoutError(f"{self.arch.spec.name}: no ap_done within {self.timeout_s} s after starting "
                                         f"{call.mode} rows={call.rows} k={call.k} cols={call.cols}")
            if self.poll_interval_s:
                time.sleep(self.poll_interval_s)

    def close(self) -> None:
        for buf in self._pool.buffers().values():
            if hasattr(buf, "freebuffer"):
                buf.freebuffer()
        self._pool.clear()
