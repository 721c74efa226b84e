"""The pynq backend: the kernel on a Zynq/Kria board through PYNQ (written against pynq 4.0.0).

* The kernel IP is found in the overlay by its VLNV (regmap.json ``vlnv``) and bound to
  :class:`SatKernelDriver`, a ``pynq.DefaultIP`` subclass with ``bindto`` that VLNV. On open, the
  register map PYNQ parsed from the overlay's .hwh (``ip_dict[ip]["registers"]``) is checked
  against regmap.json (:func:`check_register_map`): a bitstream exported with 32-bit m_axi
  addresses, or from another kernel, is refused with an error naming the first register that
  disagrees, before anything is written.
* Buffers come from ``pynq.allocate``, one per kernel argument, reused across calls while big enough
  (:class:`hostpy.device.BufferPool`); pointer arguments a call does not use get one small shared
  placeholder per memory bank. Only the bytes a call uses are flushed (inputs) and invalidated
  (outputs).
* Registers are programmed from regmap.json only (ABI v2): every pointer's device address goes to
  its offset (low word) and offset+4 (high word), every scalar input (mode, rows, k, cols, n) to
  its offset; then ap_start. ap_done is polled with an adaptive interval (a few immediate polls,
  then sleeps growing to ``max_poll_interval_s``) until ``timeout_s`` (at least 1 ms).
* After ap_done the ``status`` output register is read (its ap_vld flag first: clear on read, so a
  status left over from an earlier job is never taken for this one) and checked
  (:func:`hostpy.device.check_status`).
* A timeout leaves the kernel running (PYNQ cannot stop an HLS kernel). The device then is
  *busy-unknown*: before every start the backend reads the control register (which also clears a
  stale, clear-on-read ap_done) and refuses to start while ap_idle is 0
  (:class:`hostpy.errors.DeviceBusyError`), so no argument register is rewritten under a running
  job and no old ap_done is taken for a new job. :meth:`PynqDevice.wait_idle` waits the job out;
  :meth:`PynqDevice.reset` reloads the bitstream. ``close()`` frees no buffer a running job may
  still write, and says so.

Seams for testing without a board: ``ip=`` takes any object with ``read(offset)``/``write(offset,
value)`` (e.g. a SatKernelDriver over a fake ``pynq.Device``), ``device=`` the pynq Device that
buffers are allocated on, ``overlay=`` anything with ``ip_dict`` (and ``download()`` for reset).
"""
from __future__ import annotations

import re
import time
import warnings

import numpy as np

from ..archdir import Arch
from ..device import (BufferPool, Device, DeviceBusyError, KernelCall, check_status, output_layout,
                      scalar_values)
from ..errors import ArchError, ArchMismatchError, BackendUnavailableError, DeviceTimeoutError, KernelError

try:
    import pynq
except ImportError as _e:  # hostpy itself never needs pynq; only this backend does
    raise BackendUnavailableError(f"the pynq backend needs the 'pynq' package (pip install pynq==4.0.0): {_e}") from _e

KERNEL_NAME = "sat_kernel"           # gen.regmap.KERNEL_NAME; regmap.json["kernel"] is checked against it

# Buffers a closed device could not free because a timed-out job may still write them (kept alive
# for the life of the process: freeing them would hand memory the kernel writes to someone else).
UNRELEASED: list = []


def kernel_vlnv(kernel: str) -> str:
    """VLNV Vitis HLS gives an exported kernel named ``kernel`` (vendor xilinx.com, library hls, 1.0)."""
    return f"xilinx.com:hls:{kernel}:1.0"


class SatKernelDriver(pynq.DefaultIP):
    """PYNQ driver bound to the satgen kernel IP (register access only; programming is in PynqDevice)."""

    bindto = [kernel_vlnv(KERNEL_NAME)]

    def __init__(self, description):
        super().__init__(description=description)


def _kernel_ip_name(overlay, arch: Arch) -> str:
    vlnv = arch.regmap.get("vlnv") or kernel_vlnv(arch.regmap["kernel"])     # regmap.json names the IP
    names = sorted(name for name, d in overlay.ip_dict.items() if d.get("type") == vlnv)
    if not names:
        raise ArchError(f"the overlay has no IP of type {vlnv}; IPs: {', '.join(sorted(overlay.ip_dict)) or 'none'}")
    if len(names) > 1:
        raise ArchError(f"the overlay has several {vlnv} IPs ({', '.join(names)}); pass ip=overlay.<name>")
    return names[0]


def find_kernel_ip(overlay, arch: Arch):
    """The overlay attribute of the IP whose VLNV is the kernel's."""
    ip = overlay
    for part in _kernel_ip_name(overlay, arch).split("/"):
        ip = getattr(ip, part)
    return ip


def _words(offset: int, size_bits: int) -> set[int]:
    return set(range(offset, offset + max(size_bits, 32) // 8, 4))


def _name_pattern(name: str):
    # Vitis HLS: `a_val_1`/`a_val_2` for the two words of a pointer (or one 64-bit `a_val`), `<name>_ctrl`
    # holding `<name>_ap_vld` for an output scalar, `_r` appended to names that clash with HDL keywords.
    return re.compile(rf"^{re.escape(name)}(_r)?(_\d+|_ctrl|_ap_vld|_data(_\d+)?)?$", re.IGNORECASE)


def check_register_map(arch: Arch, registers: dict, addr_range: int | None = None) -> list[str]:
    """Refuse an overlay whose kernel registers (PYNQ's parse of the .hwh) disagree with regmap.json.

    ``registers`` is ``ip_dict[ip]["registers"]``: name -> {address_offset, size (bits), ...}. For each
    argument, the 32-bit words covered by the overlay's registers of that name must be exactly the
    words regmap.json gives it (a pointer: two; a scalar: one; an output scalar: value and ap_vld).
    Where no register carries the argument's name (a naming scheme this check does not know), the
    words must still be covered, by registers named after no other argument; that is accepted and
    noted (the returned list). Raises :class:`ArchMismatchError` naming the register otherwise.
    """
    rm = arch.regmap
    where = f"the overlay's {rm['kernel']} (.hwh)"
    patterns = {a["name"]: _name_pattern(a["name"]) for a in rm["args"]}

    def owner(reg_name):
        return next((arg for arg, pat in patterns.items() if pat.match(reg_name)), None)

    by_word = {}
    for n, r in registers.items():
        for w in _words(r["address_offset"], int(r.get("size", 32))):
            by_word[w] = n
    notes = []
    for a in rm["args"]:
        mine = {n: r for n, r in registers.items() if patterns[a["name"]].match(n)}
        expect = {a["offset"]} if a["kind"] == "scalar" else \
            {a["offset"], a["offset"] + 4} if a["kind"] == "ptr" else {a["offset"], a["vld_offset"]}
        want = ", ".join(f"{o:#x}" for o in sorted(expect))
        if not mine:
            at = {w: by_word.get(w) for w in sorted(expect)}
            missing = [f"{w:#x}" for w, n in at.items() if n is None]
            if missing:
                raise ArchMismatchError(f"register {a['name']}: {where} has no register of that name and none at "
                                        f"{', '.join(missing)}, where regmap.json puts it; the bitstream was not built "
                                        f"from this regmap.json ({rm['arch']})")
            taken = sorted({n for n in at.values() if owner(n) not in (None, a["name"])})
            if taken:
                raise ArchMismatchError(f"register {a['name']}: regmap.json puts it at {want}, where {where} has "
                                        f"{', '.join(taken)}")
            notes.append(f"register {a['name']}: the overlay calls the register(s) at {want} "
                         f"{', '.join(sorted(set(at.values())))}; accepted by offset")
            continue
        got = set().union(*(_words(r["address_offset"], int(r.get("size", 32))) for r in mine.values()))
        if got == expect:
            continue
        have = ", ".join(f"{n} at {r['address_offset']:#x} ({r.get('size', 32)} bits)"
                         for n, r in sorted(mine.items(), key=lambda kv: kv[1]["address_offset"]))
        hint = ""
        if a["kind"] == "ptr" and len(got) == 1:
            hint = (": a 32-bit m_axi address, so the kernel was exported without `config_interface "
                    "-m_axi_addr64` (regmap.json and this driver need 64-bit addresses); re-export it")
        raise ArchMismatchError(f"register {a['name']}: regmap.json expects it at {want} but {where} has {have}"
                                f"{hint}")
    if addr_range is not None and addr_range < rm.get("registers_end", 0):
        raise ArchMismatchError(f"{where} maps {addr_range:#x} bytes of registers, regmap.json needs "
                                f"{rm['registers_end']:#x}")
    return notes


class PynqDevice(Device):
    backend = "pynq"

    def __init__(self, arch: Arch, *, bitfile=None, overlay=None, ip=None, device=None,
                 timeout_s: float = 5.0, max_poll_interval_s: float = 0.01, registers: dict | None = None):
        super().__init__(arch)
        if arch.regmap["kernel"] != KERNEL_NAME:
            raise ArchError(f"regmap.json names kernel {arch.regmap['kernel']!r}, this driver binds {KERNEL_NAME!r}")
        addr_range = None
        if ip is None:
            if overlay is None:
                if bitfile is None:
                    raise BackendUnavailableError("the pynq backend needs bitfile=<path to .bit with its .hwh>, "
                                                  "overlay= or ip=")
                overlay = pynq.Overlay(str(bitfile), **({"device": device} if device is not None else {}))
            name = _kernel_ip_name(overlay, arch)
            ip = find_kernel_ip(overlay, arch)
            desc = overlay.ip_dict[name]
            if registers is None:
                registers = desc.get("registers")
            addr_range = desc.get("addr_range")
        elif registers is None:
            registers = getattr(ip, "_registers", None)     # DefaultIP keeps the .hwh registers of its description
        self.register_notes = check_register_map(arch, registers, addr_range) if registers else []
        self.registers_checked = bool(registers)
        self.overlay = overlay
        self.ip = ip
        self.pynq_device = device
        self.timeout_s = max(float(timeout_s), 0.001)
        self.max_poll_interval_s = max(float(max_poll_interval_s), 0.0)
        self._word = arch.regmap["abi"]["word_bytes"]
        self._pool = BufferPool(self._allocate, placeholder_alloc=lambda bank: self._allocate(self._word, np.uint8))
        rm = arch.regmap
        self._ctrl = rm["control"]["offset"]
        bits = rm["control"]["bits"]
        self._start_bit, self._done_bit, self._idle_bit = (1 << bits[b] for b in ("ap_start", "ap_done", "ap_idle"))
        self._status = next((a for a in rm["args"] if a["kind"] == "scalar_out" and a["name"] == "status"), None)
        self._stuck: dict | None = None      # a started job whose ap_done was not seen: it may still run
        self._closed = False

    # ---- buffers ----
    def _allocate(self, count: int, dtype: np.dtype):
        return pynq.allocate((count,), dtype=dtype, target=self.pynq_device)

    # ---- registers ----
    def _register_words(self, values: dict[str, int]) -> list[tuple[int, int]]:
        """(offset, 32-bit word) of every input argument register, all checked before any is written."""
        words = []
        for reg in self.arch.regmap["args"]:
            if reg["kind"] == "scalar_out":
                continue
            value = values[reg["name"]]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise KernelError(f"{reg['name']}: {value!r} is not an integer")
            value = int(value)
            if reg["kind"] == "ptr":
                if not 0 <= value < 1 << 64:
                    raise KernelError(f"{reg['name']}: device address {value:#x} does not fit 64 bits")
                words += [(reg["offset"], value & 0xFFFFFFFF), (reg["offset"] + 4, value >> 32)]
            else:
                if not 0 <= value < 1 << 32:
                    raise KernelError(f"{reg['name']}={value} does not fit its 32-bit register")
                words.append((reg["offset"], value))
        return words

    def _describe(self, call: KernelCall) -> str:
        return f"{call.mode} rows={call.rows} k={call.k} cols={call.cols}"

    def _ensure_idle(self) -> None:
        """Refuse to start while a job (one that timed out, or anyone's) still runs; forget a finished one."""
        ctrl = self.ip.read(self._ctrl)                # also clears a stale ap_done (clear on read)
        if not ctrl & self._idle_bit:
            if self._stuck is not None:
                age = time.monotonic() - self._stuck["since"]
                raise DeviceBusyError(
                    f"{self.arch.spec.name}: the kernel is still running {self._stuck['job']}, started {age:.1f} s "
                    f"ago, whose wait timed out or was interrupted (ap_idle is 0); nothing was written. Wait for it "
                    f"(device.wait_idle()) or reload the bitstream (device.reset()).")
            raise DeviceBusyError(f"{self.arch.spec.name}: the kernel is not idle (control register {ctrl:#x}) "
                                  f"before a start; is another process driving it?")
        if self._stuck is not None:
            self._forget_stuck()

    def _forget_stuck(self) -> None:
        if self._status is not None:
            self.ip.read(self._status["vld_offset"])   # clear the finished job's ap_vld (clear on read)
        self._stuck = None

    def execute(self, call: KernelCall) -> dict[str, np.ndarray]:
        if self._closed:
            raise BackendUnavailableError("the pynq device is closed")
        self._ensure_idle()
        values: dict[str, int] = dict(scalar_values(self.arch, call))
        self._register_words({**values, **{r["name"]: 0 for r in self.arch.regmap["args"] if r["kind"] == "ptr"}})
        for name, data in call.inputs().items():
            buf = self._pool.get(name, data.size, np.uint8)
            buf[:data.size] = data
            buf[:data.size].sync_to_device()         # flush exactly the bytes the kernel reads
            values[name] = buf.device_address
        outs = {}
        for name, (count, dtype) in output_layout(self.arch, call).items():
            outs[name] = (self._pool.get(name, count, dtype), count)
            values[name] = outs[name][0].device_address
        for reg in self.arch.regmap["args"]:
            if reg["kind"] == "ptr" and reg["name"] not in values:
                values[reg["name"]] = self._pool.placeholder(reg.get("bank", 0)).device_address
        words = self._register_words(values)
        for offset, word in words:
            self.ip.write(offset, word)
        # From ap_start until ap_done has been seen the job counts as possibly running: a timeout or an
        # interrupt (Ctrl-C) in between leaves the device busy-unknown for the next call.
        self._stuck = {"job": self._describe(call), "since": time.monotonic()}
        self.ip.write(self._ctrl, self._start_bit)
        self._wait_done(call)
        self._stuck = None
        check_status(self.arch, self._read_status(call), call)
        result = {}
        for name, (buf, count) in outs.items():
            buf[:count].sync_from_device()           # invalidate exactly the bytes the kernel wrote
            result[name] = np.array(buf[:count])
        return result

    def _read_status(self, call: KernelCall) -> int:
        if self._status is None:
            return 0
        if not self.ip.read(self._status["vld_offset"]) & 1:
            raise KernelError(f"{self.arch.spec.name}: the kernel signalled ap_done for {self._describe(call)} "
                              f"without writing its status register (status_ap_vld is 0)")
        return self.ip.read(self._status["offset"])

    def _wait_done(self, call: KernelCall) -> None:
        start = time.monotonic()
        deadline = start + self.timeout_s
        interval, polls = 0.0, 0
        while not self.ip.read(self._ctrl) & self._done_bit:
            now = time.monotonic()
            if now > deadline:
                raise DeviceTimeoutError(
                    f"{self.arch.spec.name}: no ap_done within {self.timeout_s} s after starting "
                    f"{self._describe(call)}; the kernel may still be running it: the next call checks ap_idle "
                    f"first (device.wait_idle() waits, device.reset() reloads the bitstream)")
            polls += 1
            if polls > 8:                            # a few immediate polls, then back off: never spin a core
                interval = min(self.max_poll_interval_s, max(interval * 2, 2e-5))
                time.sleep(min(interval, max(deadline - now, 0.0)))

    # ---- recovery ----
    def busy(self) -> bool:
        """True while the kernel runs (reads the control register; clears a stale ap_done)."""
        return not self.ip.read(self._ctrl) & self._idle_bit

    def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait until the kernel is idle (e.g. the job that timed out ended), then accept calls again."""
        deadline = time.monotonic() + max(self.timeout_s if timeout_s is None else float(timeout_s), 0.001)
        interval = 0.0
        while self.busy():
            if time.monotonic() > deadline:
                job = self._stuck["job"] if self._stuck else "a job"
                raise DeviceTimeoutError(f"{self.arch.spec.name}: the kernel is still running {job}")
            interval = min(self.max_poll_interval_s, max(interval * 2, 2e-5))
            time.sleep(interval)
        if self._stuck is not None:
            self._forget_stuck()

    def reset(self) -> None:
        """Reload the bitstream (``overlay.download()``), which stops the kernel, and accept calls again."""
        if self.overlay is None or not hasattr(self.overlay, "download"):
            raise BackendUnavailableError("reset() reloads the bitstream and needs the overlay (open the pynq "
                                          "backend with bitfile= or overlay=); otherwise reload it yourself and "
                                          "call wait_idle()")
        self.overlay.download()
        self.wait_idle()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        buffers = list(self._pool.buffers().values()) + list(self._pool.placeholders().values())
        self._pool.clear()
        if self._stuck is not None and self.busy():
            UNRELEASED.append(buffers)
            nbytes = sum(b.nbytes for b in buffers)
            warnings.warn(f"{self.arch.spec.name}: close() left {len(buffers)} buffers ({nbytes} bytes) allocated: "
                          f"the kernel is still running {self._stuck['job']}, whose wait timed out, and may write "
                          f"them; they stay allocated until the process exits (reload the bitstream to stop "
                          f"the kernel)", RuntimeWarning, stacklevel=2)
            return
        for buf in buffers:
            if hasattr(buf, "freebuffer"):
                buf.freebuffer()
