"""The xrt backend through a fake ``pyxrt`` module (no XRT or card here).

The fake implements just the pyxrt surface the backend uses (device, xclbin, hw_context, kernel,
bo with write/read/sync, ert_cmd_state, xclBOSyncDirection). Its kernel call runs the C-simulated
kernel (or the golden model when gen.csim is missing) on the buffer objects' memory, so the test
checks argument order (regmap order), memory-bank group ids, host<->device syncs, buffer reuse and
the timeout path. It does not prove that real pyxrt behaves like the fake: that needs a card.
"""
from __future__ import annotations

import ctypes
import enum
import sys
import types

import numpy as np
import pytest

import hostpy
from hostpy import golden
from hostpy.errors import DeviceTimeoutError

from test_hostpy_helpers import arch_dir, csim_available


class _State(enum.Enum):
    ERT_CMD_STATE_COMPLETED = 4
    ERT_CMD_STATE_RUNNING = 3


def _fake_pyxrt(arch, run_kernel, log, finishes=True):
    px = types.ModuleType("pyxrt")
    px.ert_cmd_state = _State
    px.xclBOSyncDirection = types.SimpleNamespace(XCL_BO_SYNC_BO_TO_DEVICE="to_device",
                                                  XCL_BO_SYNC_BO_FROM_DEVICE="from_device")

    class bo:
        normal = 0

        def __init__(self, device, nbytes, flags, group):
            self.mem, self.group = np.zeros(nbytes, np.uint8), group
            log.append(("alloc", group, nbytes))

        def write(self, data, offset):
            data = np.frombuffer(memoryview(data).cast("B"), np.uint8)
            self.mem[offset:offset + data.size] = data

        def read(self, size, offset):
            return self.mem[offset:offset + size].copy()

        def sync(self, direction, *a):
            log.append(("sync", self.group, direction))

    class kernel:
        def __init__(self, ctx, name):
            assert name == arch.regmap["kernel"]

        def group_id(self, i):
            return i

        def __call__(self, *args):
            assert len(args) == len(arch.regmap["args"])
            regs = {}
            for reg, a in zip(arch.regmap["args"], args):
                if reg["kind"] == "ptr":
                    assert isinstance(a, bo) and a.group == arch.arg_names.index(reg["name"])
                    regs[reg["name"]] = a.mem
                else:
                    regs[reg["name"]] = int(a)
            log.append(("run", regs["mode"], regs["rows"], regs["k"], regs["cols"]))
            if finishes:
                run_kernel(regs)
            return types.SimpleNamespace(wait=lambda ms: _State.ERT_CMD_STATE_COMPLETED if finishes
                                         else _State.ERT_CMD_STATE_RUNNING)

    px.bo, px.kernel = bo, kernel
    px.device = lambda index: types.SimpleNamespace(register_xclbin=lambda xb: None)
    px.xclbin = lambda path: types.SimpleNamespace(get_uuid=lambda: "uuid")
    px.hw_context = lambda dev, uuid: object()
    return px


def _kernel(arch):
    if csim_available():
        from hostpy.backends.csim import build_library, load_library
        lib = load_library(build_library(arch), arch)
        names = ("a_val", "a_idx", "b", "c", "ff_val", "ff_idx", "bp_val", "bp_idx")

        def run(regs):
            ptrs = [regs[n].ctypes.data_as(ctypes.c_void_p) if n in regs else None for n in names]
            assert lib.satgen_run(regs["mode"], regs["rows"], regs["k"], regs["cols"], *ptrs) == 0
        return run
    from hostpy.backends.numpy_backend import NumpyDevice
    from hostpy.device import KernelCall
    ref, s = NumpyDevice(arch), arch.spec
    modes = {v: k for k, v in arch.regmap["modes"].items()}

    def run(regs):
        mode, rows, k, cols = modes[regs["mode"]], regs["rows"], regs["k"], regs["cols"]
        dt = arch.data_dtype
        a_count = rows * -(-k // s.m) * s.n if mode == "SPARSE" else rows * k
        call = KernelCall(mode, rows, k, cols, regs["a_val"].view(dt)[:a_count],
                          regs.get("a_idx") if mode == "SPARSE" else None,
                          regs["b"].view(dt)[:k * cols] if mode != "PRUNE" else None)
        for name, data in ref.execute(call).items():
            regs[name].view(data.dtype)[:data.size] = data
    return run


def _open(tmp_path_factory, tmp_path, monkeypatch, finishes=True):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    log = []
    monkeypatch.setitem(sys.modules, "pyxrt", _fake_pyxrt(arch, _kernel(arch), log, finishes))
    xclbin = tmp_path / "sat_kernel.xclbin"
    xclbin.write_bytes(b"fake")
    return hostpy.open(arch.path, backend="xrt", xclbin=xclbin, tile=(16, 32, 16), timeout_s=0.01), log


def test_xrt_backend_runs_the_three_passes_bit_exact(tmp_path_factory, tmp_path, monkeypatch):
    acc, log = _open(tmp_path_factory, tmp_path, monkeypatch)
    s = acc.spec
    kw = dict(data_bits=s.data_bits, acc_bits=s.acc_bits)
    rng = np.random.default_rng(5)
    w = rng.integers(-128, 128, (20, 45)).astype(np.int8)
    x = rng.integers(-128, 128, (45, 7)).astype(np.int8)
    dy = rng.integers(-128, 128, (20, 7)).astype(np.int8)
    p = acc.prune(w)
    ff, bp = golden.prune(w, s.n, s.m, data_bits=s.data_bits)
    assert np.array_equal(p.ff.values, ff.values) and np.array_equal(p.bp.indices, bp.indices)
    assert np.array_equal(acc.ff(p, x), golden.ff(ff, x, **kw))
    assert np.array_equal(acc.bp(p, dy), golden.bp(bp, dy, **kw))
    assert np.array_equal(acc.wu(dy, x), golden.wu(dy, x, **kw))
    runs = [e for e in log if e[0] == "run"]
    assert len(runs) == acc.calls > 4
    # Every run syncs its inputs to the device before and its outputs back after; buffers are reused.
    allocs = [e for e in log if e[0] == "alloc"]
    assert len(allocs) < len(runs)
    first_run = log.index(runs[0])
    assert ("sync", acc.arch.arg_names.index("a_val"), "to_device") in log[:first_run]


def test_xrt_run_that_does_not_finish_times_out(tmp_path_factory, tmp_path, monkeypatch):
    acc, _ = _open(tmp_path_factory, tmp_path, monkeypatch, finishes=False)
    a = np.ones((4, 8), np.int8)
    with pytest.raises(DeviceTimeoutError, match="not done within 10 ms"):
        acc.gemm(a, a.T.copy())


def test_xrt_backend_needs_an_xclbin(tmp_path_factory, monkeypatch):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    monkeypatch.setitem(sys.modules, "pyxrt", _fake_pyxrt(arch, None, []))
    with pytest.raises(hostpy.BackendUnavailableError, match="xclbin"):
        hostpy.open(arch.path, backend="xrt")
