"""The pynq backend without a board, over tests/fakes.py's FakePynqDevice (a REGISTER_RW pynq.Device).

A real SatKernelDriver (so a real pynq.MMIO) is instantiated over the fake device, which keeps host
and device copies of every buffer apart, runs the kernel executor (golden model by default) when
ap_start is written, keeps a job running across a timeout, and models ap_done / status_ap_vld as
clear-on-read: register programming, partial syncs and every failure path are checked exactly.
"""
from __future__ import annotations

import gc
import time
from types import SimpleNamespace

import numpy as np
import pytest

pynq = pytest.importorskip("pynq")

import hostpy  # noqa: E402
from hostpy import golden  # noqa: E402
from hostpy.abi import Abi  # noqa: E402
from hostpy.backends import pynq_backend  # noqa: E402
from hostpy.backends.pynq_backend import SatKernelDriver, check_register_map, find_kernel_ip, kernel_vlnv  # noqa: E402
from hostpy.device import DeviceBusyError  # noqa: E402
from hostpy.errors import (ArchError, ArchMismatchError, BackendUnavailableError, DeviceTimeoutError,  # noqa: E402
                           KernelError)

from fakes import FakeOverlay, FakePynqDevice, hwh_registers  # noqa: E402
from test_hostpy_helpers import arch_dir, check_gemm_and_ff, gemm_operands as _gemm_operands  # noqa: E402

BASE = 0xA000_0000


def _open(tmp_path_factory, name="sat_2x8", tile=None, timeout_s=5.0, overlay=False, executor=None, **kw):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, name))
    dev = FakePynqDevice(arch, executor, base=BASE)
    ip = SatKernelDriver({"phys_addr": BASE, "addr_range": arch.regmap["address_range"], "device": dev})
    where = {"overlay": FakeOverlay(dev, ip)} if overlay else {"ip": ip}
    acc = hostpy.open(arch.path, backend="pynq", device=dev, tile=tile, timeout_s=timeout_s, **where, **kw)
    return acc, dev


def test_register_programming_and_partial_syncs_of_one_sparse_call(tmp_path_factory):
    acc, dev = _open(tmp_path_factory)
    s, rm = acc.spec, acc.arch.regmap
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (16, 40)).astype(np.int8)
    x = rng.integers(-128, 128, (40, 5)).astype(np.int8)
    ff, _ = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
    y = acc.ff(ff, x)
    assert np.array_equal(y, golden.ff(ff, x, data_bits=s.data_bits, acc_bits=s.acc_bits))
    assert dev.starts == 1 and not dev.violations
    # The exact register programming: every input argument at its regmap offset (ABI v2: n too; unused
    # pointers get the one placeholder of their memory bank), then ap_start; status is never written.
    pool = acc.device._pool
    addr = {n: b.device_address for n, b in pool.buffers().items()}
    holders = {bank: b.device_address for bank, b in pool.placeholders().items()}
    scalars = {"mode": rm["modes"]["SPARSE"], "rows": 16, "k": 40, "cols": 5, "n": s.n}
    expect = []
    for r in rm["args"]:
        if r["kind"] == "ptr":
            a = addr[r["name"]] if r["name"] in ("a_val", "a_idx", "b", "c") else holders[r["bank"]]
            expect += [(r["offset"], a & 0xFFFFFFFF), (r["offset"] + 4, a >> 32)]
        elif r["kind"] == "scalar":
            expect.append((r["offset"], scalars[r["name"]]))
    expect.append((rm["control"]["offset"], 1 << rm["control"]["bits"]["ap_start"]))
    assert dev.writes == expect
    assert set(holders) == {r["bank"] for r in rm["args"] if r["name"] in ("ff_val", "ff_idx", "bp_val", "bp_idx")}
    # Exactly the bytes the kernel reads are flushed before the start, the bytes it writes invalidated after.
    sizes = Abi(s).call_bytes("SPARSE", 16, 40, 5)
    bo = {n: b.bo for n, b in pool.buffers().items()}
    assert dev.syncs == [("flush", bo[n], 0, sizes[n]) for n in ("a_val", "a_idx", "b")] + \
        [("invalidate", bo["c"], 0, sizes["c"])]


@pytest.mark.parametrize("name", ["dense", "sat_2x8_kv260", "sat_2x4"])
def test_other_presets_bit_exact(tmp_path_factory, name):
    acc, dev = _open(tmp_path_factory, name)
    check_gemm_and_ff(acc)
    assert not dev.violations


def test_the_kernel_sees_device_memory_only_after_a_flush(tmp_path_factory, monkeypatch):
    """The fake keeps host and device copies apart: without the flush the kernel computes on stale bytes."""
    acc, dev = _open(tmp_path_factory)
    a, b = _gemm_operands()
    ref = golden.gemm_dense(a, b, data_bits=8, acc_bits=32)
    assert np.array_equal(acc.gemm(a, b), ref)
    monkeypatch.setattr(pynq.buffer.PynqBuffer, "sync_to_device", lambda self: None)
    assert not np.array_equal(acc.gemm(a + 1, b), golden.gemm_dense(a + 1, b, data_bits=8, acc_bits=32))


def test_three_passes_and_prune_tiled_match_golden(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, tile=(8, 16, 8))
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
    assert dev.starts == acc.calls > 4 and not dev.violations


def test_alternating_prune_and_gemm_allocate_nothing_after_warm_up(tmp_path_factory):
    acc, dev = _open(tmp_path_factory)
    a, b = _gemm_operands()
    w = np.random.default_rng(4).integers(-128, 128, (16, 32)).astype(np.int8)
    acc.prune(w)
    acc.gemm(a, b)
    warm = len(dev.buffers)
    for _ in range(5):
        acc.prune(w)
        acc.gemm(a, b)
        acc.gemm(a[:4], b[:, :3])                   # smaller calls fit in the same buffers
    assert len(dev.buffers) == warm
    # one real buffer per argument, placeholders in their own pool: one per memory bank, one word each
    pool = acc.device._pool
    assert set(pool.buffers()) == {n for n in acc.arch.arg_names if acc.arch.arg(n)["kind"] == "ptr"} - {"a_idx"}
    assert all(b.nbytes == acc.arch.regmap["abi"]["word_bytes"] for b in pool.placeholders().values())
    assert np.array_equal(acc.gemm(a[:4], b[:, :3]), golden.gemm_dense(a[:4], b[:, :3], data_bits=8, acc_bits=32))


def test_timeout_leaves_the_device_busy_until_the_job_ends(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, timeout_s=0.05)
    a, b = _gemm_operands()
    dev.hang = True
    with pytest.raises(DeviceTimeoutError, match="no ap_done within 0.05 s"):
        acc.gemm(a, b)
    assert dev.running and dev.starts == 1
    # While the old job runs the next call writes nothing and says why.
    writes = len(dev.writes)
    a2, b2 = _gemm_operands(seed=7)
    with pytest.raises(DeviceBusyError, match="still running DENSE rows=8 k=16 cols=8, started .* ago, whose wait timed out"):
        acc.gemm(a2, b2)
    assert len(dev.writes) == writes and dev.starts == 1 and not dev.violations
    # The old job ends and leaves its (clear-on-read) ap_done set; the new job takes three polls.
    # A driver that did not clear the stale ap_done would return before the new job ran.
    dev.finish()
    dev.polls_to_done = 3
    assert np.array_equal(acc.gemm(a2, b2), golden.gemm_dense(a2, b2, data_bits=8, acc_bits=32))
    assert dev.starts == 2 and not dev.violations


def test_an_interrupted_wait_leaves_the_device_busy_too(tmp_path_factory, monkeypatch):
    acc, dev = _open(tmp_path_factory)
    a, b = _gemm_operands()
    dev.hang = True
    real = type(dev).read_registers

    def interrupt(self, address, length):
        if self.running and self.ctrl_reads > 3:
            raise KeyboardInterrupt
        return real(self, address, length)
    monkeypatch.setattr(type(dev), "read_registers", interrupt)
    with pytest.raises(KeyboardInterrupt):
        acc.gemm(a, b)
    monkeypatch.setattr(type(dev), "read_registers", real)
    with pytest.raises(DeviceBusyError, match="still running DENSE"):
        acc.gemm(a, b)
    dev.finish()
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=32))


def test_wait_idle_and_reset_recover_from_a_timeout(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, timeout_s=0.02, overlay=True)
    a, b = _gemm_operands()
    dev.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b)
    with pytest.raises(DeviceTimeoutError, match="still running"):
        acc.device.wait_idle(timeout_s=0.02)
    acc.device.reset()                              # reloads the bitstream: the job is gone
    assert acc.device.overlay.downloads == 1
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=32))
    dev.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b)
    dev.finish()
    acc.device.wait_idle()
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=32))


def test_reset_without_an_overlay_is_a_clear_error(tmp_path_factory):
    acc, _ = _open(tmp_path_factory)
    with pytest.raises(BackendUnavailableError, match="reloads the bitstream"):
        acc.device.reset()


def test_close_keeps_buffers_a_running_job_may_write(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, timeout_s=0.02)
    a, b = _gemm_operands()
    dev.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b)
    kept = len(pynq_backend.UNRELEASED)
    with pytest.warns(RuntimeWarning, match=r"left 6 buffers .* still running DENSE"):
        acc.close()
    assert len(pynq_backend.UNRELEASED) == kept + 1
    acc.close()                                     # idempotent


def test_poll_backs_off_and_tiny_timeouts_are_clamped(tmp_path_factory):
    acc, dev = _open(tmp_path_factory, timeout_s=0.3)
    a, b = _gemm_operands()
    dev.hang = True
    t0 = time.monotonic()
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b)
    assert time.monotonic() - t0 >= 0.3
    assert dev.ctrl_reads < 150                     # a spinning poll reads the register ~10^5 times in 0.3 s
    acc0, dev0 = _open(tmp_path_factory, timeout_s=0.0)
    assert acc0.device.timeout_s == 0.001
    dev0.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc0.gemm(a, b)


def test_a_scalar_that_does_not_fit_its_register_writes_nothing(tmp_path_factory):
    acc, dev = _open(tmp_path_factory)
    a = Abi(acc.spec).pack_grouped(np.ones((4, 8), np.int8), acc.spec.rows)
    from hostpy.device import KernelCall
    with pytest.raises(KernelError, match="n=4294967296 does not fit its 32-bit register"):
        acc.device.execute(KernelCall("DENSE", 4, 8, 4, a, None, a, n=1 << 32))
    assert dev.writes == [] and dev.syncs == []


def test_status_register_refusal_and_missing_status(tmp_path_factory):
    bits = None

    class Refuses:
        def __init__(self, arch):
            nonlocal bits
            bits = arch.regmap["status_bits"]

        def execute(self, mode_code, scalars, buffers, addresses):
            return 1 << bits["bad_n"] | 1 << bits["misaligned"]

    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    acc, dev = _open(tmp_path_factory, executor=Refuses(arch))
    a, b = _gemm_operands()
    with pytest.raises(KernelError, match=r"status 0xc \(misaligned, bad_n\)"):
        acc.gemm(a, b)
    assert not any(k == "invalidate" for k, *_ in dev.syncs)        # outputs of a refused job are not read
    # ap_done without the status write (ap_vld 0) is not taken for success
    acc2, dev2 = _open(tmp_path_factory)
    dev2._status = None
    with pytest.raises(KernelError, match="without writing its status register"):
        acc2.gemm(a, b)


def test_register_map_is_checked_against_the_overlay(tmp_path_factory):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    check_register_map(arch, hwh_registers(arch), arch.regmap["address_range"])     # the Vitis HLS export
    with pytest.raises(ArchMismatchError, match=r"register a_val: .*a_val at 0x10 \(32 bits\).*m_axi_addr64"):
        check_register_map(arch, hwh_registers(arch, addr64=False))
    # A name this check does not know, at the right offset, is accepted and noted; a missing one is not.
    assert check_register_map(arch, hwh_registers(arch, rename={"n": "nkeep"})) == \
        ["register n: the overlay calls the register(s) at 0x90 nkeep; accepted by offset"]
    regs = hwh_registers(arch)
    del regs["n"]
    with pytest.raises(ArchMismatchError, match="register n: .* has no register of that name and none at 0x90"):
        check_register_map(arch, regs)
    with pytest.raises(ArchMismatchError, match=r"register k: regmap.json expects it at 0x80 but .* k_2 at 0x90"):
        check_register_map(arch, hwh_registers(arch, rename={"n": "k_2"}))      # another argument's name
    regs = hwh_registers(arch)
    del regs["status_ctrl"]
    with pytest.raises(ArchMismatchError, match="register status: regmap.json expects it at 0x98, 0x9c"):
        check_register_map(arch, regs)
    with pytest.raises(ArchMismatchError, match="maps 0x40 bytes"):
        check_register_map(arch, hwh_registers(arch), 0x40)
    # On open: through the overlay's ip_dict, and through a driver built from an ip_dict description.
    dev = FakePynqDevice(arch, base=BASE)
    ip = SatKernelDriver({"phys_addr": BASE, "addr_range": 0x1000, "device": dev})
    with pytest.raises(ArchMismatchError, match="register a_val"):
        hostpy.open(arch.path, backend="pynq", overlay=FakeOverlay(dev, ip, registers=hwh_registers(arch, addr64=False)),
                    device=dev)
    assert dev.writes == []
    ip32 = SatKernelDriver({"phys_addr": BASE, "addr_range": 0x1000, "device": dev, "fullpath": "sat_kernel_0",
                            "registers": hwh_registers(arch, addr64=False)})
    with pytest.raises(ArchMismatchError, match="register a_val"):
        hostpy.open(arch.path, backend="pynq", ip=ip32, device=dev)
    acc = hostpy.open(arch.path, backend="pynq", overlay=FakeOverlay(dev, ip), device=dev)
    assert acc.device.registers_checked


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


def test_close_frees_buffers_when_idle(tmp_path_factory):
    acc, dev = _open(tmp_path_factory)
    a, b = _gemm_operands()
    acc.gemm(a, b)
    acc.close()
    assert acc.device._pool.buffers() == {}
    with pytest.raises(BackendUnavailableError, match="closed"):
        acc.gemm(a, b)
    gc.collect()
