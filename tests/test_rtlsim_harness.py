"""The Verilator harness of the rtl backend (gen/rtlsim.py, hls_templates/rtlsim/), tested on its own.

The kernel here is tests/rtlsim_copy_kernel.py: TEST DATA, a word-copy kernel with sat_kernel's
ports and register map (not the accelerator). It shows that the harness's AXI4-Lite master, its
memory model (latency, bandwidth, stalls, banks) and its protocol checks do what they claim, and
that the library build is cached. The accelerator itself is tested in tests/test_hostpy_rtl.py.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from gen.memmodel import MemoryModel
from gen.rtlsim import build_rtl_library
from hostpy.backends.rtl import RtlModel

from rtlsim_copy_kernel import MISBEHAVE, copy_kernel_sv
from test_hostpy_helpers import arch_dir

WB = 64          # sat_2x8: 512-bit words


@pytest.fixture(scope="module")
def copy_lib(tmp_path_factory):
    out = arch_dir(tmp_path_factory, "sat_2x8")
    rm = json.loads((out / "regmap.json").read_text())
    sv = tmp_path_factory.mktemp("copy_kernel") / "copy_kernel.sv"
    sv.write_text(copy_kernel_sv(rm))
    lib = build_rtl_library(out, sources=[sv], top="copy_kernel")
    return out, rm, sv, lib


class Copier:
    def __init__(self, lib, rm, memory=None):
        self.m = RtlModel(lib, memory or MemoryModel(read_latency=8, write_latency=4))
        self.args = {a["name"]: a for a in rm["args"]}
        self.rm = rm
        self.m.write_reg(rm["gie"]["offset"], 1)
        self.m.write_reg(rm["ier"]["offset"], 1)

    def arg(self, name, value):
        a = self.args[name]
        self.m.write_reg(a["offset"], value & 0xFFFFFFFF)
        if a["kind"] == "ptr":
            self.m.write_reg(a["offset"] + 4, value >> 32)

    def copy(self, src, dst, words, *, cols=0, mode=0, limit=10**6):
        self.arg("a_val", src)
        self.arg("c", dst)
        self.arg("k", words)
        self.arg("cols", cols)
        self.arg("mode", mode)
        self.m.write_reg(self.rm["control"]["offset"], 1)
        cycles = self.m.run(limit)
        if cycles is not None:
            ctrl = self.m.read_reg(self.rm["control"]["offset"])
            assert ctrl & 2, f"interrupt without ap_done: 0x{ctrl:x}"
            self.m.write_reg(self.rm["isr"]["offset"], 1)
        return cycles

    def status(self):
        st = self.args["status"]
        vld = self.m.read_reg(st["vld_offset"])
        return vld, self.m.read_reg(st["offset"])


def _data(words, seed=0):
    return np.random.default_rng(seed).integers(0, 256, words * WB, dtype=np.uint8)


def test_library_build_is_cached(copy_lib):
    out, _, sv, lib = copy_lib
    t0 = time.monotonic()
    again = build_rtl_library(out, sources=[sv], top="copy_kernel")
    assert again == lib and time.monotonic() - t0 < 5
    assert RtlModel(lib).masters == [(a["bundle"], a["bank"]) for a in json.loads((out / "regmap.json").read_text())["args"]
                                     if a["kind"] == "ptr"]


def test_control_registers_and_copy_under_stalls(copy_lib):
    _, rm, _, lib = copy_lib
    ctrl = rm["control"]
    for seed, banking in ((1, "per_bank"), (2, "shared")):
        c = Copier(lib, rm, MemoryModel(read_latency=13, write_latency=7, words_per_cycle=0.75, banking=banking,
                                        stall_rate=0.3, seed=seed))
        bits = c.m.read_reg(ctrl["offset"])
        assert bits >> ctrl["bits"]["ap_idle"] & 1 and not bits >> ctrl["bits"]["ap_done"] & 1
        words = 700                          # several bursts, 4 KiB boundaries inside
        src, dst = c.m.alloc(words * WB), c.m.alloc(words * WB)
        assert src >= 1 << 32 and src % 4096 == 0
        data = _data(words, seed)
        c.m.copy_to(src, data)
        c.arg("a_val", src), c.arg("c", dst), c.arg("k", words), c.arg("mode", 0), c.arg("cols", 0)
        c.m.write_reg(ctrl["offset"], 1)
        assert c.m.run(10**6) is not None
        first = c.m.read_reg(ctrl["offset"])
        assert first >> ctrl["bits"]["ap_done"] & 1 and first >> ctrl["bits"]["ap_idle"] & 1
        assert not c.m.read_reg(ctrl["offset"]) >> ctrl["bits"]["ap_done"] & 1        # clear on read
        assert c.m.interrupt                       # ISR still set until toggled
        c.m.write_reg(rm["isr"]["offset"], 1)
        c.m.step(2)
        assert not c.m.interrupt
        assert c.status() == (1, 0)
        assert c.status()[0] == 0                  # ap_vld clears on read
        assert np.array_equal(c.m.copy_from(dst, words * WB), data)
        assert c.m.protocol_errors() == (0, "")
        st = c.m.master_stats()
        assert st["gmem0"]["read_beats"] == words and st["gmem3"]["write_beats"] == words
        assert st["gmem0"]["read_bursts"] >= words // 256 + 1


def test_read_latency_and_bandwidth_are_what_the_model_says(copy_lib):
    """The copy kernel moves one burst at a time, so every extra cycle of latency costs exactly one
    cycle per burst, and halving the words per cycle doubles the time of every read beat."""
    _, rm, _, lib = copy_lib
    words = 600

    def cycles(**mm):
        c = Copier(lib, rm, MemoryModel(**mm))
        src, dst = c.m.alloc(words * WB), c.m.alloc(words * WB)
        c.m.copy_to(src, _data(words))
        n = c.copy(src, dst, words)
        assert n is not None and c.m.protocol_errors()[0] == 0
        return c.m.kernel_cycles, c.m.master_stats()["gmem0"]["read_bursts"], c.m.master_stats()["gmem3"]["write_bursts"]

    base, rb, wbursts = cycles(read_latency=10, write_latency=5)
    slow_read, _, _ = cycles(read_latency=110, write_latency=5)
    slow_write, _, _ = cycles(read_latency=10, write_latency=45)
    assert slow_read - base == 100 * rb
    assert slow_write - base == 40 * wbursts
    half, _, _ = cycles(read_latency=10, write_latency=5, words_per_cycle=0.5)
    # read beats and write beats each take two cycles instead of one (per-bank channels)
    assert abs((half - base) - 2 * words) <= 2 * (rb + wbursts)


def test_misaligned_pointer_sets_status_and_touches_nothing(copy_lib):
    _, rm, _, lib = copy_lib
    c = Copier(lib, rm)
    src, dst = c.m.alloc(64 * WB), c.m.alloc(64 * WB)
    c.m.copy_to(src, _data(64))
    assert c.copy(src + 4, dst, 64) is not None
    assert c.status() == (1, 1 << rm["status_bits"]["misaligned"])
    assert not c.m.copy_from(dst, 64 * WB).any()
    assert c.m.master_stats()["gmem0"]["read_beats"] == 0


@pytest.mark.parametrize("fault,message", [("cross_4k", "crosses a 4 KiB boundary"), ("early_wlast", "WLAST"),
                                           ("drop_arvalid", "ARVALID dropped"), ("outside", "outside every allocated")])
def test_protocol_violations_are_reported(copy_lib, fault, message):
    _, rm, _, lib = copy_lib
    c = Copier(lib, rm, MemoryModel(read_latency=5, write_latency=3, stall_rate=0.5 if fault == "drop_arvalid" else 0.0,
                                    seed=3))
    words = 300
    src, dst = c.m.alloc(words * WB), c.m.alloc(words * WB)
    if fault == "outside":
        dst = c.m.alloc(16 * WB)                # too small for the copy
    offset = 3 * WB if fault == "cross_4k" else 0     # src not 4 KiB aligned: a 256-beat burst crosses
    assert c.copy(src + offset, dst, words - 3, cols=MISBEHAVE.get(fault, 0)) is not None
    n, first = c.m.protocol_errors()
    assert n >= 1 and message in first, first
    c.m.clear_errors()
    assert c.m.protocol_errors() == (0, "")


def test_a_hanging_kernel_hits_the_cycle_limit_and_reset_recovers(copy_lib):
    _, rm, _, lib = copy_lib
    c = Copier(lib, rm)
    src, dst = c.m.alloc(8 * WB), c.m.alloc(8 * WB)
    before = c.m.cycles
    assert c.copy(src, dst, 8, cols=MISBEHAVE["hang"], limit=5000) is None
    assert c.m.cycles - before >= 5000
    c.m.reset()
    c.m.write_reg(rm["gie"]["offset"], 1), c.m.write_reg(rm["ier"]["offset"], 1)
    c.m.copy_to(src, _data(8))
    assert c.copy(src, dst, 8) is not None
    assert np.array_equal(c.m.copy_from(dst, 8 * WB), _data(8))


def test_host_memory_access_outside_buffers_is_refused(copy_lib):
    _, rm, _, lib = copy_lib
    m = RtlModel(lib)
    a = m.alloc(100)                       # rounded up to 2 words
    m.copy_to(a, np.ones(128, np.uint8))
    with pytest.raises(Exception, match="outside every buffer"):
        m.copy_to(a + 64, np.ones(128, np.uint8))
    with pytest.raises(Exception, match="outside every buffer"):
        m.copy_from(a - 64, 8)
    m.free(a)
    with pytest.raises(Exception, match="outside every buffer"):
        m.copy_from(a, 8)


def test_trace_of_a_cycle_window(copy_lib, tmp_path):
    out, rm, sv, lib = copy_lib
    tlib = build_rtl_library(out, sources=[sv], top="copy_kernel", trace=True)
    assert tlib != lib and RtlModel(lib).trace_format is None
    c = Copier(tlib, rm)
    fmt = c.m.trace_format
    assert fmt in ("fst", "vcd")
    src, dst = c.m.alloc(40 * WB), c.m.alloc(40 * WB)
    path = tmp_path / f"window.{fmt}"
    first = c.m.cycles
    c.m.trace(path, first + 10, first + 60)
    assert c.copy(src, dst, 40) is not None
    c.m.trace_close()
    data = path.read_bytes()
    assert len(data) > 1000
    if fmt == "vcd":
        text = data.decode(errors="replace")
        assert "m_axi_gmem0_arvalid" in text
        times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
        assert min(times) >= (first + 10) * 10 and max(times) < (first + 60) * 10
    with pytest.raises(Exception, match="without tracing"):
        RtlModel(lib).trace(tmp_path / "no.vcd", 0, 10)
