"""The xrt backend through tests/fakes.py's fake ``pyxrt`` (no XRT or card here).

The fake models pyxrt's binding and XRT's runtime at several release tags (see fakes.fake_pyxrt):
features by version, pybind11's argument conversion, separate host and device copies of every bo,
runs that keep going on timeout, and the 2.23 abort when a running run is destroyed. Its kernel is
the pluggable executor (the golden model behind the memory ABI v2 by default), so results are
checked bit for bit. It does not prove that real pyxrt behaves like the fake: that needs a card.
"""
from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import hostpy
from hostpy import golden
from hostpy.abi import Abi
from hostpy.backends import xrt_backend
from hostpy.device import DeviceBusyError, KernelCall
from hostpy.errors import BackendUnavailableError, DeviceTimeoutError, KernelError

from fakes import fake_pyxrt, write_fake_xclbin
from test_hostpy_helpers import arch_dir, check_gemm_and_ff, gemm_operands as _gemm_operands

VERSIONS = [(2, 11), (2, 12), (2, 15), (2, 16), (2, 23)]


def _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 23), executor=None, timeout_s=0.01, tile=(16, 32, 16),
          name="sat_2x8"):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, name))
    px = fake_pyxrt(arch, executor, version=version)
    monkeypatch.setitem(sys.modules, "pyxrt", px)
    xclbin = write_fake_xclbin(tmp_path / "sat_kernel.xclbin", arch)
    return hostpy.open(arch.path, backend="xrt", xclbin=xclbin, tile=tile, timeout_s=timeout_s), px


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: "xrt%d.%d" % v)
def test_three_passes_bit_exact_on_every_pyxrt_generation(tmp_path_factory, tmp_path, monkeypatch, version):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, version)
    dev = acc.device
    assert dev.api == ("hw_context" if version >= (2, 16) else "legacy")
    assert dev.status_source == ("register" if version <= (2, 11) else "host")
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
    assert px._state.starts == acc.calls > 4 and not px.fatal


@pytest.mark.parametrize("name", ["dense", "sat_2x8_kv260", "sat_2x4"])
def test_other_presets_bit_exact(tmp_path_factory, tmp_path, monkeypatch, name):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, name=name, tile=None)
    check_gemm_and_ff(acc)
    assert not px.fatal


def test_buffers_in_their_banks_and_partial_syncs(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch)
    a, b = _gemm_operands(rows=10, k=24, cols=9)
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=32))
    rm = acc.arch.regmap
    pool = acc.device._pool
    for name, buf in pool.buffers().items():
        assert buf.bo.group == acc.arch.arg(name)["bank"]            # kernel.group_id(i) = the regmap's bank
    sizes = Abi(acc.spec).call_bytes("DENSE", 10, 24, 9)
    bufs = pool.buffers()
    assert bufs["a_val"].bo.syncs == [("XCL_BO_SYNC_BO_TO_DEVICE", sizes["a_val"], 0)]
    assert bufs["b"].bo.syncs == [("XCL_BO_SYNC_BO_TO_DEVICE", sizes["b"], 0)]
    # c: the POISON fill goes down (status unreadable on this pyxrt), the result comes back; both partial
    assert bufs["c"].bo.syncs == [("XCL_BO_SYNC_BO_TO_DEVICE", sizes["c"], 0),
                                  ("XCL_BO_SYNC_BO_FROM_DEVICE", sizes["c"], 0)]
    unused = {r["bank"] for r in rm["args"] if r["kind"] == "ptr" and r["name"] not in ("a_val", "b", "c")}
    assert set(pool.placeholders()) == unused


def test_alternating_prune_and_gemm_allocate_nothing_after_warm_up(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch)
    a, b = _gemm_operands()
    w = np.random.default_rng(4).integers(-128, 128, (16, 32)).astype(np.int8)
    acc.prune(w)
    acc.gemm(a, b)
    warm = px._state.allocations
    for _ in range(5):
        acc.prune(w)
        acc.gemm(a, b)
    assert px._state.allocations == warm
    assert acc.device._pool.placeholder_allocations == len(acc.device._pool.placeholders()) <= 4


def test_timed_out_run_is_kept_and_the_device_busy_until_it_ends(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 23))
    a, b = _gemm_operands()
    px._state.hang = True
    with pytest.raises(DeviceTimeoutError, match="not done within 10 ms .*XRT cannot stop it"):
        acc.gemm(a, b)
    pending = acc.device._pending
    old = {id(buf.bo) for buf in pending.buffers.values()}
    assert set(pending.buffers) == {"a_val", "b", "c"} and acc.device._pool.buffers() == {}
    gc.collect()
    assert not px.fatal                                  # the running run was not destroyed
    starts = px._state.starts
    a2, b2 = _gemm_operands(seed=9)
    with pytest.raises(DeviceBusyError, match="still running DENSE rows=8 k=16 cols=8, which timed out"):
        acc.gemm(a2, b2)
    assert px._state.starts == starts                    # nothing started, nothing written
    px.finish()                                          # the old run ends (late, into its own buffers)
    assert np.array_equal(acc.gemm(a2, b2), golden.gemm_dense(a2, b2, data_bits=8, acc_bits=32))
    assert not old & {id(buf.bo) for buf in acc.device._pool.buffers().values()}   # never reused
    gc.collect()
    assert not px.fatal


def test_an_interrupted_wait_keeps_the_run(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 23))
    px._state.hang = True

    def interrupted(self, *timeout):
        raise KeyboardInterrupt
    monkeypatch.setattr(px.run, "wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        acc.gemm(*_gemm_operands())
    gc.collect()
    assert not px.fatal and acc.device._pending is not None
    with pytest.raises(DeviceBusyError):
        acc.gemm(*_gemm_operands())


def test_wait_idle_waits_a_timed_out_run_out(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 15))
    a, b = _gemm_operands()
    px._state.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc.gemm(a, b)
    with pytest.raises(DeviceTimeoutError, match="still running after another"):
        acc.device.wait_idle(0.001)
    px.finish()
    acc.device.wait_idle()
    assert np.array_equal(acc.gemm(a, b), golden.gemm_dense(a, b, data_bits=8, acc_bits=32))


def test_close_releases_everything_or_says_what_it_could_not(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch)
    a, b = _gemm_operands()
    acc.gemm(a, b)
    assert px._state.contexts == 1 and px._state.live_bos > 0
    acc.close()
    gc.collect()
    assert px._state.contexts == 0 and px._state.live_bos == 0      # buffers, kernel, context released
    with pytest.raises(BackendUnavailableError, match="closed"):
        acc.gemm(a, b)
    # A run still going cannot be destroyed (XRT 2.23 aborts the process) nor its buffers freed.
    acc2, px2 = _open(tmp_path_factory, tmp_path, monkeypatch)
    px2._state.hang = True
    with pytest.raises(DeviceTimeoutError):
        acc2.gemm(a, b)
    with pytest.warns(RuntimeWarning, match=r"could not release the run of DENSE .* 3 buffers"):
        acc2.close()
    assert acc2.device.unreleased and xrt_backend.LIVE_RUNS[-1].run.state() == px2.ert_cmd_state.ERT_CMD_STATE_RUNNING
    gc.collect()
    assert not px2.fatal and px2._state.contexts == 1


def test_timeouts_under_a_millisecond_never_become_wait_forever(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, timeout_s=0.0002)
    assert acc.device.timeout_ms == 1
    px._state.hang = True
    with pytest.raises(DeviceTimeoutError, match="within 1 ms"):      # the fake raises on wait(0) (forever)
        acc.gemm(*_gemm_operands())


def test_arguments_are_never_silently_dropped(tmp_path_factory, tmp_path, monkeypatch):
    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch)
    dev = acc.device
    a = Abi(acc.spec).pack_grouped(np.ones((4, 8), np.int8), acc.spec.rows)
    b = Abi(acc.spec).pack_grouped(np.ones((4, 8), np.int8), acc.spec.cols)
    # n beyond 32 bits: pyxrt's kernel(*args) would leave it unset and start anyway; the backend refuses
    with pytest.raises(KernelError, match=r"n=4294967296 does not fit its 32-bit register"):
        dev.execute(KernelCall("DENSE", 4, 8, 4, a, None, b, n=1 << 32))
    assert px._state.starts == 0
    # what the binding itself does (the fake must agree): kernel(*args) swallows, set_arg raises
    k = dev.kernel
    args = [dev._pool.placeholder(k.group_id(i)).bo if r["kind"] == "ptr" else 1 << 40
            for i, r in enumerate(acc.arch.regmap["args"]) if r["kind"] != "scalar_out"]
    run = k(*args)
    assert run.snapshot[acc.arch.arg_names.index("mode")] == 0 and px._state.starts == 1
    with pytest.raises(TypeError, match="incompatible function arguments"):
        px.run(k).set_arg(acc.arch.arg_names.index("rows"), 1 << 40)
    with pytest.raises(IndexError):
        px.run(k).set_arg(99, 1)


def test_uint32_scalars_go_through_as_c_int_bits(tmp_path_factory, tmp_path, monkeypatch):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    seen = {}

    class Record:
        def execute(self, mode_code, scalars, buffers, addresses):
            seen.update(scalars)
            return 0

    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt(arch, Record()))
    acc2 = hostpy.open(arch.path, backend="xrt", xclbin=write_fake_xclbin(tmp_path / "x.xclbin", arch),
                       poison_outputs=False)       # the recording executor computes nothing
    a = Abi(arch.spec).pack_grouped(np.ones((4, 8), np.int8), arch.spec.rows)
    # A value above 2**31 - 1 (pyxrt's set_arg takes a C int) arrives with its 32 bits unchanged.
    acc2.device.execute(KernelCall("DENSE", 4, 8, 4, a, None, a, n=(1 << 32) - 2))
    assert seen["n"] == (1 << 32) - 2 and seen["rows"] == 4


def test_status_register_on_pyxrt_2_11_and_host_refusal_elsewhere(tmp_path_factory, tmp_path, monkeypatch):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    bad_n = 1 << arch.regmap["status_bits"]["bad_n"]

    class Refuses:
        def execute(self, mode_code, scalars, buffers, addresses):
            return bad_n

    acc, px = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 11), executor=Refuses())
    assert acc.device.kernel.mode is px.kernel.cu_access_mode.exclusive   # read_register needs it
    with pytest.raises(KernelError, match=r"status 0x8 \(bad_n\)"):
        acc.gemm(*_gemm_operands())
    assert px._state.starts == 1
    # pyxrt >= 2.12 cannot read registers: the host evaluates the refusal rules before starting
    acc2, px2 = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 23))
    w = Abi(acc2.spec).pack_grouped(np.ones((8, 16), np.int8), acc2.spec.rows)
    with pytest.raises(KernelError, match=r"bad_n"):
        acc2.device.execute(KernelCall("PRUNE", 8, 16, 0, w, n=8))
    assert px2._state.starts == 0
    # ... and a refusal the host did not predict shows as outputs the kernel never wrote
    acc3, px3 = _open(tmp_path_factory, tmp_path, monkeypatch, version=(2, 23), executor=Refuses())
    with pytest.raises(KernelError, match=r"wrote none of c for DENSE .* did not predict"):
        acc3.gemm(*_gemm_operands())
    assert px3._state.starts == 1


def test_pyxrt_too_old_and_unreadable_xclbin_are_clear_errors(tmp_path_factory, tmp_path, monkeypatch):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt(arch, version=(2, 9)))
    xclbin = write_fake_xclbin(tmp_path / "k.xclbin", arch)
    with pytest.raises(BackendUnavailableError, match=r"XRT >= 2\.11.*install XRT 2\.16"):
        hostpy.open(arch.path, backend="xrt", xclbin=xclbin)
    monkeypatch.setitem(sys.modules, "pyxrt", fake_pyxrt(arch, version=(2, 23)))
    junk = tmp_path / "junk.xclbin"
    junk.write_bytes(b"not an xclbin")
    with pytest.raises(BackendUnavailableError, match="cannot read .* as an xclbin"):
        hostpy.open(arch.path, backend="xrt", xclbin=junk)
    with pytest.raises(BackendUnavailableError, match="xclbin"):
        hostpy.open(arch.path, backend="xrt")


def test_the_fake_rejects_what_pyxrt_rejects(tmp_path_factory, tmp_path):
    arch = hostpy.load_arch(arch_dir(tmp_path_factory, "sat_2x8"))
    px = fake_pyxrt(arch, version=(2, 23))
    dev = px.device(0)
    with pytest.raises(TypeError):
        px.bo(dev, 64, 0, 0)                               # integer flags
    bo = px.bo(dev, 64, px.bo.normal, 0)
    with pytest.raises(TypeError):
        bo.sync("to_device", 64, 0)                        # string direction
    with pytest.raises(TypeError):
        bo.sync(0, 64, 0)                                  # integer direction
    with pytest.raises(RuntimeError, match="offset exceeds"):
        bo.sync(px.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE, 65, 0)
    with pytest.raises(RuntimeError, match="past buffer size"):
        bo.write(np.zeros(65, np.uint8), 0)
    bo.write(np.arange(64, dtype=np.uint8), 0)
    assert not bo.dev.any()                                # host and device copies are apart until a sync
    xb = px.xclbin(write_fake_xclbin(tmp_path / "k.xclbin", arch))
    with pytest.raises(TypeError):
        px.hw_context(dev, xb.get_uuid().to_string())      # a string uuid
    (tmp_path / "bad.xclbin").write_bytes(b"\0" * 64)
    with pytest.raises(RuntimeError):
        px.xclbin(str(tmp_path / "bad.xclbin"))
    old = fake_pyxrt(arch, version=(2, 15))
    assert not hasattr(old, "hw_context") and not hasattr(old.device, "register_xclbin")
    with pytest.raises(TypeError):
        old.bo(old.device(0), 64, old.bo.normal, 0).sync(old.xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE)
