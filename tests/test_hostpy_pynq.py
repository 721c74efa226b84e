"""The pynq backend without a board: a mock ``pynq.Device`` records every register write and, on
ap_start, runs the kernel over the mock memory — the C-simulated HLS kernel (csim library) when it
can be built here, and the golden model otherwise — so register programming and buffer plumbing
are checked exactly and the results bit for bit."""
from __future__ import annotations

import ctypes
import struct
from types import SimpleNamespace

import numpy as np
import pytest

pynq = pytest.importorskip("pynq")

import hostpy  # noqa: E402
from hostpy import golden  # noqa: E402
from hostpy.backends.numpy_backend import NumpyDevice  # noqa: E402
from hostpy.backends.pynq_backend import SatKernelDriver, find_kernel_ip, kernel_vlnv  # noqa: E402
from hostpy.device import KernelCall  # noqa: E402
from hostpy.errors import ArchError, BackendUnavailableError, DeviceTimeoutError  # noqa: E402

from test_hostpy_helpers import arch_dir, csim_available  # noqa: E402

BASE = 0xA000_0000          # where the mock maps the kernel's s_axilite registers
MEM_BASE = 0x4000_0000      # first "physical" address the mock allocator hands out


class MockSatDevice(pynq.Device):
    """A REGISTER_RW pynq Device: register file + DMA memory; AP_START runs ``kernel`` over that memory."""

    def __init__(self, arch, kernel, *, answers=True):
        super().__init__("mock_sat")
        self.capabilities = {"REGISTER_RW": True}
        self.arch, self.kernel, self.answers = arch, kernel, answers
        self.regs = bytearray(arch.regmap["address_range"])
        self.writes: list[tuple[int, int]] = []   # (register offset, 32-bit value) in order
        self.buffers: list[pynq.buffer.PynqBuffer] = []
        self.syncs: list[tuple[str, int]] = []
        self.starts = 0
        self._next = MEM_BASE

    # ---- memory ----
    def allocate(self, shape, dtype, **kwargs):
        buf = pynq.buffer.PynqBuffer(shape, dtype, device=self, device_address=self._next, coherent=False)
        buf[...] = 0
        self._next += (buf.nbytes + 0xFFF) & ~0xFFF
        self.buffers.append(buf)
        return buf

    def flush(self, bo, offset, vaddr, nbytes):
        self.syncs.append(("flush", vaddr))

    def invalidate(self, bo, offset, vaddr, nbytes):
        self.syncs.append(("invalidate", vaddr))

    def host_pointer(self, address: int):
        """ctypes address of device ``address`` (None for 0 = unused argument)."""
        if address == 0:
            return None
        for b in self.buffers:
            if b.device_address <= address < b.device_address + b.nbytes:
                return b.ctypes.data + (address - b.device_address)
        raise AssertionError(f"kernel given address {address:#x} that no allocated buffer contains")

    # ---- registers ----
    def read_registers(self, address, length):
        off = address - BASE
        return bytes(self.regs[off:off + length])

    def write_registers(self, address, data):
        off = address - BASE
        for i in range(0, len(data), 4):
            self.writes.append((off + i, struct.unpack_from("<I", data, i)[0]))
        self.regs[off:off + len(data)] = data
        ctrl = self.arch.regmap["control"]
        bits = ctrl["bits"]
        if off == ctrl["offset"] and data[0] & (1 << bits["ap_start"]):
            self.starts += 1
            word = (1 << bits["ap_idle"])
            if self.answers:
                self.kernel(self, self.reg_values())
                word |= (1 << bits["ap_done"])
            self.regs[off:off + 4] = struct.pack("<I", word)

    def reg_values(self) -> dict[str, int]:
        vals = {}
        for r in self.arch.regmap["args"]:
            lo = struct.unpack_from("<I", self.regs, r["offset"])[0]
            vals[r["name"]] = lo | (struct.unpack_from("<I", self.regs, r["offset"] + 4)[0] << 32 if r["kind"] == "ptr" else 0)
        return vals


def _csim_kernel(lib):
    def run(dev, regs):
        names = ("a_val", "a_idx", "b", "c", "ff_val", "ff_idx", "bp_val", "bp_idx")
        ptrs = [dev.host_pointer(regs.get(n, 0)) for n in names]
        assert lib.satgen_run(regs["mode"], regs["rows"], regs["k"], regs["cols"], *ptrs) == 0
    return run


def _golden_kernel(arch):
    """Reads the operands out of the mock memory at the programmed addresses, writes the golden outputs back."""
    s, ref = arch.spec, NumpyDevice(arch)
    modes = {v: k for k, v in arch.regmap["modes"].items()}

    def view(dev, address, count, dtype):
        return np.ctypeslib.as_array((ctypes.c_uint8 * (count * np.dtype(dtype).itemsize)).from_address(
            dev.host_pointer(address))).view(dtype)

    def run(dev, regs):
        mode, rows, k, cols = modes[regs["mode"]], regs["rows"], regs["k"], regs["cols"]
        a_count = rows * -(-k // s.m) * s.n if mode == "SPARSE" else rows * k
        a_idx = view(dev, regs["a_idx"], -(-a_count * s.idx_bits // 8), np.uint8) if mode == "SPARSE" else None
        b = view(dev, regs["b"], k * cols, arch.data_dtype) if mode != "PRUNE" else None
        call = KernelCall(mode, rows, k, cols, view(dev, regs["a_val"], a_count, arch.data_dtype), a_idx, b)
        for name, data in ref.execute(call).items():
            view(dev, regs[name], data.size, data.dtype)[:] = data
    return run


KERNELS = ["golden", pytest.param("csim", marks=pytest.mark.skipif(not csim_available(), reason="gen.csim missing"))]


def _open(tmp_path_factory, name, kernel_kind, tile=None, answers=True, timeout_s=5.0):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, name))
    if kernel_kind == "csim":
        from hostpy.backends.csim import build_library, load_library
        kernel = _csim_kernel(load_library(build_library(arch), arch))
    else:
        kernel = _golden_kernel(arch)
    dev = MockSatDevice(arch, kernel, answers=answers)
    ip = SatKernelDriver({"phys_addr": BASE, "addr_range": arch.regmap["address_range"], "device": dev})
    acc = hostpy.open(arch.path, backend="pynq", ip=ip, device=dev, tile=tile, timeout_s=timeout_s)
    return acc, dev


@pytest.mark.parametrize("kernel_kind", KERNELS)
def test_register_programming_of_one_sparse_call(tmp_path_factory, kernel_kind):
    acc, dev = _open(tmp_path_factory, "sat_2x8", kernel_kind)
    s, rm = acc.spec, acc.arch.regmap
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (16, 40)).astype(np.int8)
    x = rng.integers(-128, 128, (40, 5)).astype(np.int8)
    ff, _ = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
    y = acc.ff(ff, x)
    assert np.array_equal(y, golden.ff(ff, x, data_bits=s.data_bits, acc_bits=s.acc_bits))
    assert dev.starts == 1
    # The exact register programming: every argument at its regmap offset, then ap_start.
    addr = {n: b.device_address for n, b in acc.device._pool.buffers().items()}
    expect = []
    scalars = {"mode": rm["modes"]["SPARSE"], "rows": 16, "k": 40, "cols": 5}
    for r in rm["args"]:
        if r["kind"] == "ptr":
            a = addr.get(r["name"], 0) if r["name"] in ("a_val", "a_idx", "b", "c") else 0
            expect += [(r["offset"], a & 0xFFFFFFFF), (r["offset"] + 4, a >> 32)]
        else:
            expect.append((r["offset"], scalars[r["name"]]))
    expect.append((rm["control"]["offset"], 1 << rm["control"]["bits"]["ap_start"]))
    assert dev.writes == expect
    # Inputs flushed before the start, the output invalidated after it.
    assert [k for k, _ in dev.syncs] == ["flush", "flush", "flush", "invalidate"]


@pytest.mark.parametrize("kernel_kind", KERNELS)
def test_three_passes_and_prune_tiled_match_golden(tmp_path_factory, kernel_kind):
    acc, dev = _open(tmp_path_factory, "sat_2x8", kernel_kind, tile=(8, 16, 8))
    s = acc.spec
    rng = np.random.default_rng(2)
    w = rng.integers(-128, 128, (24, 20)).astype(np.int8)
    x = rng.integers(-128, 128, (20, 9)).astype(np.int8)
    dy = rng.integers(-128, 128, (24, 9)).astype(np.int8)
    p = acc.prune(w)
    ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
    for got, ref in ((p.ff, ff), (p.bp, bp)):
        assert np.array_equal(got.values, ref.values) and np.array_equal(got.indices, ref.indices)
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    assert np.array_equal(acc.ff(p, x), golden.ff(ff, x, **kw))
    assert np.array_equal(acc.bp(p, dy), golden.bp(bp, dy, **kw))
    assert np.array_equal(acc.wu(dy, x), golden.wu(dy, x, **kw))
    assert dev.starts == acc.calls > 4          # really tiled into several kernel calls


def test_buffers_are_reused_across_calls(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, "sat_2x8", "golden")
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (8, 16)).astype(np.int8)
    b = rng.integers(-128, 128, (16, 8)).astype(np.int8)
    acc.gemm(a, b)
    allocated = len(dev.buffers)
    for _ in range(3):
        acc.gemm(a, b)
        acc.gemm(a[:4], b[:, :3])                   # smaller calls fit in the same buffers
    assert len(dev.buffers) == allocated == 3       # a_val, b, c
    assert np.array_equal(acc.gemm(a[:4], b[:, :3]), golden.gemm_dense(a[:4], b[:, :3], data_bits=8, acc_bits=32))


def test_no_done_raises_device_timeout(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, "sat_2x8", "golden", answers=False, timeout_s=0.05)
    a = np.ones((4, 8), np.int8)
    with pytest.raises(DeviceTimeoutError, match="no ap_done"):
        acc.gemm(a, a.T.copy())
    assert dev.starts == 1


def test_driver_binds_the_kernel_vlnv_and_is_found_in_an_overlay(tmp_path_factory):
    from gen.regmap import KERNEL_NAME
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    vlnv = kernel_vlnv(KERNEL_NAME)
    assert pynq.overlay._ip_drivers[vlnv] is SatKernelDriver
    ip = object()
    overlay = SimpleNamespace(ip_dict={"sat_kernel_0": {"type": vlnv}, "zynq_ultra_ps_e_0": {"type": "xilinx.com:ip:zynq_ultra_ps_e:3.4"}},
                              sat_kernel_0=ip)
    assert find_kernel_ip(overlay, arch) is ip
    with pytest.raises(ArchError, match="no IP of type"):
        find_kernel_ip(SimpleNamespace(ip_dict={"dma": {"type": "xilinx.com:ip:axi_dma:7.1"}}), arch)


def test_pynq_backend_without_overlay_or_bitfile_is_a_clear_error(tmp_path_factory):
    with pytest.raises(BackendUnavailableError, match="bitfile"):
        hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="pynq")
