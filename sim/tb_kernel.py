"""cocotb system testbench of sat_kernel: the whole RTL kernel driven the way the host drives it.

Control through the AXI4-Lite slave (cocotbext-axi ``AxiLiteMaster``) at the offsets of the
generated regmap.json; one DDR model per m_axi bundle (cocotbext-axi ``AxiRam`` whose read side
adds a fixed read latency, see :class:`DdrRead`); operands packed with ``hostpy.abi.Abi`` and
results compared bit for bit with ``hostpy.golden``. Every functional test runs with random pauses
on all five channels of every master (AR, R, AW, W, B) and checks that the kernel touched only the
regions ``Abi.call_bytes`` gives for the job: every AR/AW burst is checked against them (and
against the 4 KiB rule and the burst-length limit), and guard bytes around every output buffer
must come back untouched.

Environment: SATGEN_OUT (the generated architecture), SATGEN_HEAVY (more random cases),
SATGEN_KERNEL_CYCLES_OUT / SATGEN_KERNEL_CYCLES_GEMMS (test_cycle_measurement: where to write the
per-job cycle report, and which GEMMs "m,k,n;m,k,n" to run).
"""
from __future__ import annotations

import collections
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, First, RisingEdge, Timer
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster
from cocotbext.axi.axi_ram import AxiRamRead, AxiRamWrite
from cocotbext.axi.constants import AxiBurstType, AxiResp
from cocotbext.axi.memory import Memory

from gen.memmodel import MemoryModel
from hostpy import golden
from hostpy.abi import Abi
from hostpy.nm import compress
from sim.tb_common import CLOCK_NS, HEAVY, cases, random_pauses, rng_for, signed_range, spec_under_test

RAM_BYTES = 1 << 21          # per bundle
GUARD = 4096                 # guard bytes checked on each side of every output buffer
MAX_BURST = 64               # sat_kernel's MAX_BURST parameter
STALL = 0.2                  # pause probability per channel and cycle in the functional tests


def _cycle() -> int:
    return int(get_sim_time("ns")) // CLOCK_NS


class _Zero(int):
    """An int that also has a length: what cocotbext-axi reads from an absent ID signal."""

    def __len__(self) -> int:
        return 1


class _NoId:
    """Stand-in for the ID signals cocotbext-axi requires: sat_kernel has none (single ID, in order)."""

    value = _Zero(0)

    def __len__(self) -> int:
        return 1

    def __setattr__(self, name, v) -> None:    # writes (rid/bid of responses) go nowhere
        pass

    def setimmediatevalue(self, v) -> None:
        pass


def _axi_bus(dut, prefix: str) -> AxiBus:
    """AxiBus.from_prefix of a master without ID signals (IDs replaced by :class:`_NoId`)."""
    bus = AxiBus.from_prefix(dut, prefix)
    for ch, sig in ((bus.write.aw, "awid"), (bus.write.b, "bid"), (bus.read.ar, "arid"), (bus.read.r, "rid")):
        if getattr(ch, sig, None) is None:
            setattr(ch, sig, _NoId())
            ch._signals[sig] = getattr(ch, sig)
    return bus


class DdrRead(AxiRamRead):
    """AXI read side with a fixed latency (cycles from the AR handshake to the burst's first R beat),
    any number of bursts outstanding, data in order; checks every burst against ``owner.allowed``."""

    def __init__(self, bus, clock, reset, mem, owner: "Ddr"):
        self.owner = owner
        self._pending: collections.deque = collections.deque()
        self._wake = Event()
        self._sender = None
        super().__init__(bus, clock, reset, reset_active_level=False, mem=mem)
        self.ar_channel.queue_occupancy_limit = 64

    def _handle_reset(self, state):
        super()._handle_reset(state)
        if state:
            if self._sender is not None:
                self._sender.kill()
                self._sender = None
            self._pending.clear()
        elif self._sender is None:
            self._sender = cocotb.start_soon(self._send())

    async def _process_read(self):
        while True:
            ar = await self.ar_channel.recv()
            self.owner.check_burst("AR", int(ar.araddr), int(ar.arlen), int(ar.arsize), int(ar.arburst))
            self.owner.words_read += int(ar.arlen) + 1
            self._pending.append((_cycle(), ar))
            self._wake.set()

    async def _send(self):
        while True:
            while not self._pending:
                self._wake.clear()
                await self._wake.wait()
            t, ar = self._pending.popleft()
            wait = t + self.owner.model.read_latency - _cycle()
            if wait > 0:
                await ClockCycles(self.clock, wait)
            addr = int(ar.araddr)
            length = int(ar.arlen) + 1
            for n in range(length):
                r = self.r_channel._transaction_obj()
                r.rlast = n == length - 1
                r.rresp = AxiResp.OKAY
                r.rdata = int.from_bytes(self.read((addr + n * self.byte_lanes) % self.size, self.byte_lanes), "little")
                await self.r_channel.send(r)


class DdrWrite(AxiRamWrite):
    """AXI write side: B follows a burst's last W beat after ``write_latency`` cycles. A reset drops the B
    responses still pending (AXI: after reset a slave answers only bursts handshaken after it; a B for a
    burst from before the reset would be a response without its AW/W handshake, A3.3.1)."""

    def __init__(self, bus, clock, reset, mem, owner: "Ddr"):
        self.owner = owner
        self._epoch = 0                    # resets seen: a B scheduled before the latest reset is dropped
        super().__init__(bus, clock, reset, reset_active_level=False, mem=mem)
        recv = self.aw_channel.recv

        async def checked_recv():          # every AW burst goes through the owner's checks
            aw = await recv()
            owner.check_burst("AW", int(aw.awaddr), int(aw.awlen), int(aw.awsize), int(aw.awburst))
            return aw
        self.aw_channel.recv = checked_recv
        send = self.b_channel.send

        async def delayed(b, epoch):
            await ClockCycles(clock, owner.model.write_latency)
            if epoch == self._epoch:        # no reset since the burst's last W beat
                await send(b)

        async def send_later(b):            # B follows the burst's last W beat after write_latency cycles;
            cocotb.start_soon(delayed(b, self._epoch))   # the next burst is not held up (equal delays keep B in order)
        self.b_channel.send = send_later

    def _handle_reset(self, state):
        super()._handle_reset(state)
        if state:
            self._epoch += 1

    async def _write(self, address, data):
        self.owner.check_write(address, len(data))
        await super()._write(address, data)


class Ddr(Memory):
    """One bundle's memory: AXI slave read and write sides over one byte array, plus the checks."""

    def __init__(self, dut, bundle: str, model: MemoryModel, *, reads: bool, writes: bool, word_bytes: int):
        super().__init__(RAM_BYTES)
        self.bundle = bundle
        self.model = model
        self.allowed: list[tuple[int, int]] = []      # [start, end) byte ranges of the current job
        self.violations: list[str] = []
        self.bursts = {"AR": 0, "AW": 0}
        self.words_read = 0                            # words requested by AR bursts (the current job)
        self.word_bytes = word_bytes
        prefix = f"m_axi_{bundle}"
        bus = _axi_bus(dut, prefix)
        # A side the bundle never uses gets no AXI model (cocotbext-axi channels cost Python time every
        # cycle): its inputs are held idle and any request on it is a violation.
        self.read_if = DdrRead(bus.read, dut.ap_clk, dut.ap_rst_n, self.mem, self) if reads else None
        self.write_if = DdrWrite(bus.write, dut.ap_clk, dut.ap_rst_n, self.mem, self) if writes else None
        if not reads:
            for sig in ("arready", "rvalid", "rlast", "rresp", "rdata"):
                getattr(dut, f"{prefix}_{sig}").value = 0
            cocotb.start_soon(self._forbid(getattr(dut, f"{prefix}_arvalid"), "AR"))
        if not writes:
            for sig in ("awready", "wready", "bvalid", "bresp"):
                getattr(dut, f"{prefix}_{sig}").value = 0
            cocotb.start_soon(self._forbid(getattr(dut, f"{prefix}_awvalid"), "AW"))
            cocotb.start_soon(self._forbid(getattr(dut, f"{prefix}_wvalid"), "W"))

    async def _forbid(self, valid, what: str) -> None:
        while True:
            await RisingEdge(valid)
            self.bursts.setdefault(what, 0)
            self.bursts[what] += 1
            self.violations.append(f"{what} {self.bundle}: request on a channel this bundle never uses")

    def check_burst(self, what: str, addr: int, alen: int, asize: int, aburst: int) -> None:
        self.bursts[what] += 1
        nbytes = (alen + 1) * self.word_bytes
        if asize != (self.word_bytes - 1).bit_length() or aburst != int(AxiBurstType.INCR):
            self.violations.append(f"{what} {self.bundle}: size {asize} burst {aburst} (want full-width INCR)")
        if alen + 1 > MAX_BURST:
            self.violations.append(f"{what} {self.bundle}: {alen + 1} beats > {MAX_BURST}")
        if addr // 4096 != (addr + nbytes - 1) // 4096:
            self.violations.append(f"{what} {self.bundle}: burst 0x{addr:x}+{nbytes} crosses a 4 KiB boundary")
        if not any(lo <= addr and addr + nbytes <= hi for lo, hi in self.allowed):
            self.violations.append(f"{what} {self.bundle}: burst 0x{addr:x}+{nbytes} outside {self.allowed}")

    def check_write(self, addr: int, nbytes: int) -> None:
        if not any(lo <= addr and addr + nbytes <= hi for lo, hi in self.allowed):
            self.violations.append(f"W {self.bundle}: 0x{addr:x}+{nbytes} outside {self.allowed}")

    def set_pauses(self, rng: np.random.Generator, p: float) -> None:
        chans = []
        if self.read_if:
            chans += [self.read_if.ar_channel, self.read_if.r_channel]
        if self.write_if:
            chans += [self.write_if.aw_channel, self.write_if.w_channel, self.write_if.b_channel]
        for ch in chans:
            if p > 0:
                ch.set_pause_generator(random_pauses(rng, p))


@dataclass
class Job:
    mode: str
    rows: int
    k: int
    cols: int
    a: np.ndarray                    # dense A (SPARSE: already n:M along k)
    b: np.ndarray                    # B[k][cols]
    n: int = 0                       # kept per group (SPARSE, PRUNE: runtime N, the `n` register); 0 = the spec's n

    def n_reg(self, spec) -> int:
        return self.n or spec.n


class KernelTB:
    def __init__(self, dut, name: str, *, model: MemoryModel | None = None, stall: float = STALL):
        self.dut = dut
        self.spec = spec_under_test()
        self.abi = Abi(self.spec)
        self.regmap = json.loads((Path(os.environ["SATGEN_OUT"]) / "regmap.json").read_text())
        self.rng = rng_for(name)
        self.model = model or MemoryModel(read_latency=int(self.rng.integers(1, 80)),
                                          write_latency=int(self.rng.integers(1, 40)), stall_rate=stall)
        cocotb.start_soon(Clock(dut.ap_clk, CLOCK_NS, unit="ns").start())
        # cocotbext-axi logs every transfer (and its banner) at INFO: keep the logs readable and the sims fast
        logging.getLogger(f"cocotb.{dut._name}").setLevel(logging.WARNING)
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, dut.ap_rst_n,
                                  reset_active_level=False)
        self.args = {r["name"]: r for r in self.regmap["args"]}
        self.bundles = sorted({r["bundle"] for r in self.regmap["args"] if r["kind"] == "ptr"})
        # Which side of each bundle the RTL kernel uses: reads for input pointers, writes for C
        # (PRUNE's outputs are not implemented in the RTL kernel: their bundles must stay silent).
        ins = {r["bundle"] for r in self.regmap["args"] if r["kind"] == "ptr" and r["direction"] == "in"}
        outs = {self.args[n]["bundle"] for n in (["c"] + (PRUNE_OUTPUTS if rtl_prune(self.spec) else []))}
        self.ddr = {b: Ddr(dut, b, self.model, reads=b in ins, writes=b in outs, word_bytes=self.abi.word_bytes)
                    for b in self.bundles}
        for d in self.ddr.values():
            d.set_pauses(self.rng, self.model.stall_rate)
        self.wb = self.abi.word_bytes
        self.ctrl_off = self.regmap["control"]["offset"]
        self.bits = self.regmap["control"]["bits"]

    # ---- control ----
    async def reset(self, cycles: int = 8):
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, cycles)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 4)

    async def write_arg(self, name: str, value: int):
        reg = self.args[name]
        await self.ctrl.write_dword(reg["offset"], value & 0xFFFFFFFF)
        if reg["width"] == 64:
            await self.ctrl.write_dword(reg["offset"] + 4, (value >> 32) & 0xFFFFFFFF)

    async def read_reg(self, offset: int) -> int:
        return await self.ctrl.read_dword(offset)

    async def start(self):
        await self.ctrl.write_dword(self.ctrl_off, 1 << self.bits["ap_start"])

    async def wait_done(self, limit_cycles: int) -> None:
        """Wait until the control register's ap_done flag is set (no AXI-Lite polling traffic)."""
        done = self.dut.u_ctrl.done_q
        if int(done.value) == 0:
            await First(RisingEdge(done), Timer(limit_cycles * CLOCK_NS, unit="ns"))
            assert int(done.value) == 1, (f"the kernel did not end the job within {limit_cycles} cycles; "
                                          f"state: {self.hang_state()}")

    def hang_state(self) -> str:
        """The sequencer's end-of-job conditions and every DMA's counters (what a hung job waits for)."""
        out = []
        for path in ("u_seq.state", "u_seq.core_fin", "u_seq.a_left", "u_seq.i_left", "u_seq.b_busy", "u_seq.c_busy",
                     "u_seq.a_bp_busy", "u_seq.f_left", "u_seq.p_left", "u_core.busy", "beat_v", "skid_v", "in_beats",
                     "out_beats", "p_valid", "ps_v"):
            obj = self.dut
            try:
                for part in path.split("."):
                    obj = getattr(obj, part)
                out.append(f"{path}={int(obj.value)}")
            except (AttributeError, ValueError):
                pass
        for a in self.regmap["args"]:
            if a["kind"] != "ptr":
                continue
            for side, regs in (("rd", ("left", "reserved")), ("wr", ("left", "bursts_out", "unclaimed", "lenq_n"))):
                inst = getattr(self.dut, f"u_{side}_{a['name']}", None)
                if inst is not None:
                    vals = []
                    for r in regs:
                        try:
                            vals.append(f"{r}={int(getattr(inst, r).value)}")
                        except (AttributeError, ValueError):
                            pass
                    out.append(f"{side}_{a['name']}({', '.join(vals)})")
        return "; ".join(out)

    async def auto_restart(self, restarts: int, limit_cycles: int, what: str) -> None:
        """ap_start with auto_restart (bit 7): the kernel must start again by itself after every job until the
        bit is cleared; cleared once ``restarts`` jobs have ended, the job running then is the last one."""
        dut, bit = self.dut, self.bits["auto_restart"]
        dones = []

        async def count():
            while True:
                await RisingEdge(dut.u_ctrl.ap_done_in)
                dones.append(_cycle())
        counter = cocotb.start_soon(count())
        await self.ctrl.write_dword(self.ctrl_off, (1 << self.bits["ap_start"]) | (1 << bit))
        ctrl = await self.read_reg(self.ctrl_off)
        assert ctrl >> bit & 1, f"{what}: auto_restart does not read back: 0x{ctrl:x}"
        for _ in range(restarts * limit_cycles):
            if len(dones) >= restarts:
                break
            await RisingEdge(dut.ap_clk)
        assert len(dones) >= restarts, f"{what}: {len(dones)} jobs ended with auto_restart set, want >= {restarts}"
        await self.ctrl.write_dword(self.ctrl_off, 0)           # clear auto_restart: this run is the last
        assert len(dones) == restarts, f"{what}: the job is too short to clear auto_restart during run {restarts + 1}"
        for _ in range(limit_cycles):
            if len(dones) > restarts:
                break
            await RisingEdge(dut.ap_clk)
        await ClockCycles(dut.ap_clk, 100)                      # and no further job starts
        counter.kill()
        assert len(dones) == restarts + 1, f"{what}: {len(dones)} jobs ran, want {restarts + 1}"

    # ---- memory ----
    def place(self, sizes: dict[str, int]) -> dict[str, int]:
        """Random word-aligned addresses (some just below a 4 KiB boundary) for the job's buffers."""
        addrs = {}
        for name, nbytes in sizes.items():
            hi = RAM_BYTES - nbytes - 2 * GUARD
            assert hi > GUARD, f"buffer {name} of {nbytes} bytes does not fit the {RAM_BYTES}-byte memory"
            if self.rng.random() < 0.5:
                page = int(self.rng.integers(2, hi // 4096))
                a = page * 4096 - self.wb * int(self.rng.integers(1, 8))
            else:
                a = GUARD + self.wb * int(self.rng.integers(0, (hi - GUARD) // self.wb))
            addrs[name] = max(GUARD, min(a, hi) // self.wb * self.wb)
        return addrs

    def _bundle(self, name: str) -> Ddr:
        return self.ddr[self.args[name]["bundle"]]

    def expected(self, job: Job) -> dict[str, np.ndarray]:
        """The output buffers of ``job`` as hostpy computes them (golden model, packed by the ABI)."""
        s = self.spec
        n = job.n_reg(s)
        if job.mode == "PRUNE":
            ff, bp = golden.prune(job.a, n, s.m, data_bits=s.data_bits)
            out = {}
            out["ff_val"], out["ff_idx"] = self.abi.pack_compressed(ff.values, ff.indices, s.rows)
            out["bp_val"], out["bp_idx"] = self.abi.pack_compressed(bp.values, bp.indices, s.rows)
            return out
        if job.mode == "SPARSE":
            comp = compress(job.a, n, s.m, axis=1)
            c = golden.gemm_sparse(comp, job.b, data_bits=s.data_bits, acc_bits=s.acc_bits)
        else:
            c = golden.gemm_dense(job.a, job.b, data_bits=s.data_bits, acc_bits=s.acc_bits)
        return {"c": self.abi.pack_result(c)}

    def operands(self, job: Job) -> dict[str, np.ndarray]:
        s = self.spec
        if job.mode == "PRUNE":
            return {"a_val": self.abi.pack_grouped(job.a, s.rows)}
        ops = {"b": self.abi.pack_grouped(job.b.T, s.cols)}
        if job.mode == "SPARSE":
            comp = compress(job.a, job.n_reg(s), s.m, axis=1)
            ops["a_val"], ops["a_idx"] = self.abi.pack_compressed(comp.values, comp.indices, s.rows)
        else:
            ops["a_val"] = self.abi.pack_grouped(job.a, s.rows)
        return ops

    async def program(self, mode_code: int, rows: int, k: int, cols: int, n: int, addrs: dict[str, int]):
        for name, a in addrs.items():
            await self.write_arg(name, a)
        for name, v in (("mode", mode_code), ("rows", rows), ("k", k), ("cols", cols), ("n", n)):
            await self.write_arg(name, v)

    def limit(self, job: Job) -> int:
        s = self.spec
        spg = self.abi.subrecords(job.n_reg(s))
        if job.mode == "PRUNE":
            return 20 * (6 * spg * -(-job.rows // s.rows) * -(-job.k // s.m) + 4 * self.model.read_latency) + 20000
        tiles = -(-job.rows // s.rows) * -(-job.cols // s.cols)
        beats = -(-job.k // s.m) * spg if job.mode == "SPARSE" else -(-job.k // s.n)
        return 20 * (tiles * (beats + 16) + 4 * self.model.read_latency) + 20000

    async def run(self, job: Job, *, what: str = "", restarts: int = 0) -> None:
        """Place, program, start, wait; check C bit-exactly, the guards and every burst.

        ``restarts`` > 0: start with the control register's auto_restart bit set, let the kernel run
        the job 1 + ``restarts`` times by itself, clear the bit during the last run (see auto_restart)."""
        s = self.spec
        sizes = self.abi.call_bytes(job.mode, job.rows, job.k, job.cols, job.n_reg(s))
        ops = self.operands(job)
        for name, data in ops.items():
            assert data.size == sizes[name], (name, data.size, sizes[name])
        addrs = self.place(sizes)
        guards = {}
        for d in self.ddr.values():
            d.allowed, d.violations, d.words_read = [], [], 0
        for name, nbytes in sizes.items():
            ddr, a = self._bundle(name), addrs[name]
            ddr.allowed.append((a, a + nbytes))
            if name in ops:
                ddr.write(a, ops[name].tobytes())
            else:        # an output: random bytes inside and in both guard regions
                fill = self.rng.integers(0, 256, nbytes + 2 * GUARD, dtype=np.uint8).tobytes()
                ddr.write(a - GUARD, fill)
                guards[name] = fill
        # DENSE ignores the n register: it gets 0, n_hw, M or 2^32-1 at random (runtime N, docs/RTL.md)
        n_reg = job.n_reg(s) if job.mode != "DENSE" else int(self.rng.choice([0, s.n, s.m, 0xFFFFFFFF]))
        await self.program(self.regmap["modes"][job.mode], job.rows, job.k, job.cols, n_reg, addrs)
        if restarts:
            await self.auto_restart(restarts, self.limit(job), what)
        else:
            await self.start()
            await self.wait_done(self.limit(job))
        ctrl = await self.read_reg(self.ctrl_off)
        assert ctrl >> self.bits["ap_done"] & 1, f"{what}: ap_done not set in 0x{ctrl:x}"
        if restarts:        # the last auto-restarted job ended: idle, not restarting, auto_restart reads 0
            assert ctrl >> self.bits["ap_idle"] & 1 and not ctrl >> self.bits["ap_start"] & 1 \
                and not ctrl >> self.bits["auto_restart"] & 1, f"{what}: after auto_restart: control 0x{ctrl:x}"
        assert await self.read_reg(self.args["status"]["offset"]) == 0, f"{what}: status not 0"
        assert await self.read_reg(self.args["status"]["vld_offset"]) & 1, f"{what}: status ap_vld not set"
        # results and guards
        for name, fill in guards.items():
            ddr, a, nbytes = self._bundle(name), addrs[name], sizes[name]
            after = ddr.read(a - GUARD, nbytes + 2 * GUARD)
            assert after[:GUARD] == fill[:GUARD], f"{what}: guard below {name} overwritten"
            assert after[GUARD + nbytes:] == fill[GUARD + nbytes:], f"{what}: guard above {name} overwritten"
        expected = self.expected(job)
        for name in [n for n in expected if n != "c"]:          # PRUNE's four outputs
            got = np.frombuffer(self._bundle(name).read(addrs[name], sizes[name]), np.uint8)
            if not np.array_equal(got, expected[name]):
                bad = np.flatnonzero(got != expected[name])
                raise AssertionError(f"{what}: PRUNE {job.rows}x{job.k}: {name} differs from hostpy.golden.prune at "
                                     f"{bad.size} of {got.size} bytes, first at byte {bad[0]} (word {bad[0] // self.wb})")
        want = expected.get("c")
        got = np.frombuffer(self._bundle("c").read(addrs["c"], sizes["c"]), np.uint8) if want is not None else None
        if want is not None and not np.array_equal(got, want):
            c_got = self.abi.unpack_result(got, job.rows, job.cols)
            c_want = self.abi.unpack_result(want, job.rows, job.cols)
            bad = np.argwhere(c_got != c_want)
            raise AssertionError(f"{what}: {job.mode} {job.rows}x{job.k}x{job.cols}: result differs from golden at "
                                 f"{len(bad)} places, first {bad[:4].tolist()} (got {c_got[tuple(bad[0])] if len(bad) else '-'}, "
                                 f"want {c_want[tuple(bad[0])] if len(bad) else '-'}); padding differs: {len(bad) == 0}")
        for d in self.ddr.values():
            assert not d.violations, f"{what}: {d.violations[:4]}"
        if job.mode != "PRUNE":      # B: read once (reuse buffer) or once per row tile (G > abuf_depth: streamed)
            b_words = self._bundle("b").words_read
            want_b = sizes["b"] // self.wb * (1 if b_reused(s, job.k) else -(-job.rows // s.rows)) * (1 + restarts)
            assert b_words == want_b, (f"{what}: {job.mode} {job.rows}x{job.k}x{job.cols}: B read {b_words} words, "
                                       f"want {want_b} ({'reuse' if b_reused(s, job.k) else 'streaming'})")

    # ---- operands ----
    def random_job(self, mode: str, rows: int, k: int, cols: int, kind: str = "random", n: int = 0) -> Job:
        """A job; SPARSE/PRUNE keep ``n`` per group (0: the spec's n; the `n` register, runtime N)."""
        s = self.spec
        n = n or s.n
        lo, hi = signed_range(s.data_bits)
        a = self.rng.integers(lo, hi + 1, size=(rows, k))
        b = self.rng.integers(lo, hi + 1, size=(k, cols))
        if kind == "extreme":
            a = self.rng.choice([lo, hi, 0, -1], size=(rows, k))
            b = self.rng.choice([lo, hi], size=(k, cols))
        elif kind == "ties":        # equal magnitudes, lo next to hi, all-zero groups
            a = self.rng.choice([lo, hi, -hi, 0, 0, 0], size=(rows, k))
            a[:, : min(k, s.m)] = 0
        if mode == "SPARSE":
            a = golden_prune_dense(a, s, n)
        if mode == "PRUNE":
            cols, b = 0, np.zeros((k, 0), np.int64)
        return Job(mode, rows, k, cols, a.astype(np.int64), b.astype(np.int64), n if mode != "DENSE" else 0)


def golden_prune_dense(a: np.ndarray, spec, n: int | None = None) -> np.ndarray:
    """A pruned n:M along k (what the host sends for a sparse GEMM), dense (n: the spec's by default)."""
    from hostpy.nm import decompress
    return decompress(compress(a, n or spec.n, spec.m, axis=1)).astype(np.int64)


async def _time_job(tb: KernelTB) -> None:
    """Record the cycles of the control register's ap_start and ap_done edges (one job)."""
    tb._t_start = tb._t_done = None
    await RisingEdge(tb.dut.u_ctrl.ap_start)
    tb._t_start = _cycle()
    await RisingEdge(tb.dut.u_ctrl.done_q)
    tb._t_done = _cycle()


async def run_timed(tb: KernelTB, job: Job, what: str) -> int:
    timer = cocotb.start_soon(_time_job(tb))
    await tb.run(job, what=what)
    await timer
    return tb._t_done - tb._t_start


def b_reused(spec, k: int) -> bool:
    """Whether the kernel keeps B's column tiles in its reuse buffer (sat_bbuf: G = ceil(k/M) records fit a bank
    of abuf_depth records): B is then read once per call, else once per row tile (streamed)."""
    return -(-k // spec.m) <= spec.abuf_depth


def rtl_dense(spec) -> bool:
    """Whether the RTL kernel runs DENSE (sat_seq.sv.j2: a grouped record of M positions must be whole
    core beats of N; with N not dividing M the kernel refuses DENSE with bad_mode)."""
    return spec.m % spec.n == 0


def _modes(tb: KernelTB) -> list[str]:
    """GEMM modes the RTL kernel runs."""
    return [m for m in ("SPARSE", "DENSE") if m in tb.regmap["modes"] and (m != "DENSE" or rtl_dense(tb.spec))]


PRUNE_OUTPUTS = ["ff_val", "ff_idx", "bp_val", "bp_idx"]


def rtl_prune(spec) -> bool:
    """Whether the RTL kernel runs PRUNE for this spec: gen.prune_layout.prune_bp_shape (which reads
    hls_templates/rtl/_sat_layout.j2 K_BPX, the one place that decides it); other sparse specs refuse
    PRUNE with bad_mode. test_prune / test_bad_registers check both sides."""
    from gen.prune_layout import prune_bp_shape
    return prune_bp_shape(spec) is not None


def _shapes(tb: KernelTB, count: int) -> list[tuple[int, int, int]]:
    s = tb.spec
    fixed = [(1, 1, 1), (s.rows, s.m, s.cols), (s.rows + 1, 3 * s.m + 1, 2 * s.cols - 1),
             (2 * s.rows - 1, 5 * s.m - 3, s.cols + 3)]
    rnd = [(int(tb.rng.integers(1, 3 * s.rows + 1)), int(tb.rng.integers(1, 12 * s.m)),
            int(tb.rng.integers(1, 3 * s.cols + 1))) for _ in range(count)]
    return fixed + rnd


def _deep_shapes(tb: KernelTB) -> list[tuple[int, int, int]]:
    """B column tiles one record deeper than a reuse-buffer bank (streamed per row tile) and, in the full
    regression, exactly a bank deep (reused): long jobs (G >= abuf_depth beats per tile), so CI runs one."""
    s = tb.spec
    deep = [(s.rows + 1, (s.abuf_depth + 1) * s.m - 1, s.cols)]
    if HEAVY:
        deep += [(s.rows + 2, s.abuf_depth * s.m, 2 * s.cols)]
    return [d for d in deep if d[1] <= s.max_k]


@cocotb.test()
async def test_gemms(dut):
    """Every GEMM mode on fixed and random shapes (off the array grid, k not a multiple of M), back to back
    without reset, random pauses on every channel: bit-exact vs hostpy.golden, guards and bursts checked."""
    tb = KernelTB(dut, "test_gemms")
    await tb.reset()
    s = tb.spec
    runtime_n = [int(x) for x in tb.rng.permutation(tb.regmap["nm"]["runtime_n"] or [0])]
    for i, (rows, k, cols) in enumerate(_shapes(tb, cases(3))):
        for mode in _modes(tb):
            # runtime N: SPARSE jobs walk nm.runtime_n (every n on sat_2x8 in CI), different n back to back
            n = runtime_n[i % len(runtime_n)] if mode == "SPARSE" else 0
            job = tb.random_job(mode, rows, k, cols, n=n)
            await run_timed(tb, job, f"job {i} {mode} n={job.n_reg(tb.spec)}")
    for i, (rows, k, cols) in enumerate(_deep_shapes(tb)):            # then small ones reuse B again
        for mode in _modes(tb) if HEAVY else _modes(tb)[:1]:
            await run_timed(tb, tb.random_job(mode, rows, k, cols), f"deep {i} {mode}")
    await run_timed(tb, tb.random_job(_modes(tb)[-1], s.rows + 1, 2 * s.m + 1, 2 * s.cols), "after deep")


@cocotb.test()
async def test_auto_restart(dut):
    """auto_restart (control bit 7, Vitis ap_ctrl_hs semantics): with it set the kernel runs the same job again
    after every ap_done, by itself, until the bit is cleared; results bit-exact; a normal job afterwards."""
    tb = KernelTB(dut, "test_auto_restart")
    await tb.reset()
    s = tb.spec
    mode = _modes(tb)[0]
    await tb.run(tb.random_job(mode, s.rows + 1, 16 * s.m + 1, s.cols), what=f"auto {mode}", restarts=2)
    await run_timed(tb, tb.random_job(mode, s.rows, 2 * s.m, s.cols), f"after auto {mode}")


@cocotb.test()
async def test_extremes_and_ties(dut):
    """Largest/smallest operands (accumulator wrap), equal magnitudes, all-zero groups; SPARSE at the
    smallest and the largest runtime n."""
    tb = KernelTB(dut, "test_extremes_and_ties")
    await tb.reset()
    s = tb.spec
    ns = sorted({min(tb.regmap["nm"]["runtime_n"] or [0]), max(tb.regmap["nm"]["runtime_n"] or [0])})
    for kind in ("extreme", "ties"):
        for mode in _modes(tb):
            for n in (ns if mode == "SPARSE" else [0]):
                job = tb.random_job(mode, s.rows + 2, 4 * s.m + 1, s.cols + 1, kind, n=n)
                await run_timed(tb, job, f"{kind} {mode} n={job.n_reg(s)}")


@cocotb.test()
async def test_interrupt_and_control(dut):
    """ap_ctrl_hs bits, GIE/IER/ISR (toggle on write), the interrupt level, status ap_vld clear on read."""
    tb = KernelTB(dut, "test_interrupt_and_control")
    await tb.reset()
    s = tb.spec
    off = {k: tb.regmap[k]["offset"] for k in ("gie", "ier", "isr")}
    ctrl = await tb.read_reg(tb.ctrl_off)
    assert ctrl >> tb.bits["ap_idle"] & 1 and not ctrl >> tb.bits["ap_done"] & 1, f"after reset: 0x{ctrl:x}"
    # arguments read back
    for name, reg in tb.args.items():
        if reg["kind"] != "scalar_out":
            v = int(tb.rng.integers(0, 1 << reg["width"], dtype=np.uint64)) if reg["width"] == 64 else int(tb.rng.integers(0, 1 << 32))
            await tb.write_arg(name, v)
            got = await tb.read_reg(reg["offset"])
            if reg["width"] == 64:
                got |= (await tb.read_reg(reg["offset"] + 4)) << 32
            assert got == v, f"{name} reads back 0x{got:x}, wrote 0x{v:x}"
    mode = _modes(tb)[0]
    # 1) interrupts disabled: ap_done is set, the interrupt stays low
    await run_timed(tb, tb.random_job(mode, s.rows, 2 * s.m, s.cols), "no irq")
    assert int(dut.interrupt.value) == 0
    assert await tb.read_reg(off["isr"]) == 0
    # 2) IER done + GIE: the interrupt rises with ap_done and stays until ISR is toggled
    await tb.ctrl.write_dword(off["ier"], 1)
    await tb.ctrl.write_dword(off["gie"], 1)
    await run_timed(tb, tb.random_job(mode, s.rows, 2 * s.m, s.cols), "irq")
    assert int(dut.interrupt.value) == 1
    await ClockCycles(dut.ap_clk, 20)
    assert int(dut.interrupt.value) == 1, "the interrupt is a level"
    assert await tb.read_reg(off["isr"]) & 1
    await tb.ctrl.write_dword(off["isr"], 1)                 # toggle-on-write clears it
    await ClockCycles(dut.ap_clk, 2)
    assert int(dut.interrupt.value) == 0 and await tb.read_reg(off["isr"]) == 0
    # 3) IER ready: ISR bit 1; GIE off masks the pin
    await tb.ctrl.write_dword(off["ier"], 2)
    await tb.ctrl.write_dword(off["gie"], 0)
    await run_timed(tb, tb.random_job(mode, s.rows, s.m, s.cols), "ready")
    assert await tb.read_reg(off["isr"]) == 2 and int(dut.interrupt.value) == 0
    await tb.ctrl.write_dword(off["gie"], 1)
    await ClockCycles(dut.ap_clk, 2)
    assert int(dut.interrupt.value) == 1
    await tb.ctrl.write_dword(off["isr"], 2)
    await tb.ctrl.write_dword(off["ier"], 0)
    # ap_done and status ap_vld are clear on read
    assert not await tb.read_reg(tb.ctrl_off) >> tb.bits["ap_done"] & 1
    assert not await tb.read_reg(tb.args["status"]["vld_offset"]) & 1
    # the host's polling path: poll the control register until ap_done
    job = tb.random_job(mode, s.rows + 1, 3 * s.m, s.cols)
    sizes = tb.abi.call_bytes(job.mode, job.rows, job.k, job.cols)
    addrs = tb.place(sizes)
    for name, data in tb.operands(job).items():
        tb._bundle(name).write(addrs[name], data.tobytes())
    for d in tb.ddr.values():
        d.allowed = [(addrs[n], addrs[n] + sizes[n]) for n in sizes if tb.args[n]["bundle"] == d.bundle]
        d.violations = []
    await tb.program(tb.regmap["modes"][mode], job.rows, job.k, job.cols, s.n, addrs)
    await tb.start()
    seen_busy = False
    for _ in range(5000):
        c = await tb.read_reg(tb.ctrl_off)
        seen_busy |= not c >> tb.bits["ap_idle"] & 1
        if c >> tb.bits["ap_done"] & 1:
            break
    else:
        raise AssertionError("polling: no ap_done")
    assert seen_busy and c >> tb.bits["ap_idle"] & 1 and c >> tb.bits["ap_ready"] & 1, f"0x{c:x}"
    got = np.frombuffer(tb._bundle("c").read(addrs["c"], sizes["c"]), np.uint8)
    assert np.array_equal(got, tb.expected(job)["c"]), "polling job: result differs"


@cocotb.test()
async def test_bad_registers(dut):
    """Refused jobs end with ap_done and the right status bits, without any memory traffic; a good job follows."""
    tb = KernelTB(dut, "test_bad_registers")
    await tb.reset()
    s = tb.spec
    sb = tb.regmap["status_bits"]
    modes = tb.regmap["modes"]
    good = {name: GUARD + 64 * tb.wb * i for i, name in enumerate(a["name"] for a in tb.regmap["args"] if a["kind"] == "ptr")}
    mode0 = _modes(tb)[0]
    sparse = "SPARSE" in modes
    cases_ = [
        ("mode 7", dict(mode=7), {"bad_mode"}),
        ("rows 0", dict(rows=0), {"bad_size"}),
        ("k 0", dict(k=0), {"bad_size"}),
        ("cols 0", dict(cols=0), {"bad_size"}),
        ("rows > max_dim", dict(rows=s.max_dim + 1), {"bad_size"}),
        ("k > max_k", dict(k=s.max_k + 1), {"bad_size"}),
        ("cols > max_dim", dict(cols=s.max_dim + 1), {"bad_size"}),
        ("k huge", dict(k=0xFFFFFFFF), {"bad_size"}),
        ("misaligned a_val", dict(ptr=("a_val", 4)), {"misaligned"}),
        ("misaligned c", dict(ptr=("c", 1)), {"misaligned"}),
        ("misaligned b", dict(ptr=("b", tb.wb // 2)), {"misaligned"}),
        ("k 0 and misaligned", dict(k=0, ptr=("b", 8)), {"bad_size", "misaligned"}),
    ]
    if not rtl_dense(s):
        cases_.append(("DENSE with N not dividing M", dict(mode=modes["DENSE"]), {"bad_mode"}))
    if "PRUNE" in modes and not rtl_prune(s):     # no PRUNE shape of this kernel (rows != cols): refused cleanly
        cases_.append(("PRUNE", dict(mode=modes["PRUNE"]), {"bad_mode"}))
    if rtl_prune(s):
        cases_ += [("PRUNE n 0", dict(mode=modes["PRUNE"], n=0), {"bad_n"}),
                   ("PRUNE n M", dict(mode=modes["PRUNE"], n=s.m), {"bad_n"}),
                   ("PRUNE n huge, k 0", dict(mode=modes["PRUNE"], n=0xFFFFFFFF, k=0), {"bad_n", "bad_size"}),
                   ("PRUNE k 0", dict(mode=modes["PRUNE"], cols=0, k=0), {"bad_size"}),
                   ("PRUNE misaligned bp_idx", dict(mode=modes["PRUNE"], ptr=("bp_idx", 4)), {"misaligned"}),
                   ("PRUNE misaligned ff_val", dict(mode=modes["PRUNE"], ptr=("ff_val", 8)), {"misaligned"})]
    if sparse:
        cases_ += [("SPARSE n 0", dict(mode=modes["SPARSE"], n=0), {"bad_n"}),
                   ("SPARSE n M", dict(mode=modes["SPARSE"], n=s.m), {"bad_n"}),
                   ("SPARSE n M+1", dict(mode=modes["SPARSE"], n=s.m + 1), {"bad_n"}),
                   ("SPARSE n 2^31", dict(mode=modes["SPARSE"], n=1 << 31), {"bad_n"}),
                   ("misaligned a_idx", dict(mode=modes["SPARSE"], ptr=("a_idx", 2)), {"misaligned"})]
    for what, change, want in cases_:
        addrs = dict(good)
        if "ptr" in change:
            name, delta = change["ptr"]
            addrs[name] += delta
        vals = dict(mode=modes[mode0], rows=s.rows, k=s.m, cols=s.cols, n=s.n)
        vals.update({k: v for k, v in change.items() if k != "ptr"})
        for d in tb.ddr.values():
            d.bursts = {"AR": 0, "AW": 0}
        await tb.program(vals["mode"], vals["rows"], vals["k"], vals["cols"], vals["n"], addrs)
        await tb.start()
        await tb.wait_done(2000)
        ctrl = await tb.read_reg(tb.ctrl_off)
        assert ctrl >> tb.bits["ap_done"] & 1 and ctrl >> tb.bits["ap_idle"] & 1, f"{what}: 0x{ctrl:x}"
        status = await tb.read_reg(tb.args["status"]["offset"])
        want_bits = sum(1 << sb[b] for b in want)
        assert status == want_bits, f"{what}: status 0x{status:x}, want 0x{want_bits:x} ({sorted(want)})"
        assert await tb.read_reg(tb.args["status"]["vld_offset"]) & 1
        await ClockCycles(dut.ap_clk, 100)           # any stray request would show up by now
        traffic = {b: d.bursts for b, d in tb.ddr.items() if any(d.bursts.values())}
        assert not traffic, f"{what}: refused job touched memory: {traffic}"
    for mode in _modes(tb):
        await run_timed(tb, tb.random_job(mode, s.rows + 3, 2 * s.m + 5, s.cols + 2), f"good {mode} after bad")


@cocotb.test()
async def test_reset_mid_job(dut):
    """ap_rst_n low in the middle of a job (every mode the kernel runs, PRUNE included, at fixed and random
    points) returns the kernel to idle with every control register at its reset value (the HLS kernel's:
    all zero but ap_idle); the next jobs (the same mode, and after PRUNE a GEMM) are bit-exact."""
    tb = KernelTB(dut, "test_reset_mid_job")
    await tb.reset()
    s = tb.spec
    modes = _modes(tb) + (["PRUNE"] if rtl_prune(s) else [])
    for mode in modes:
        for when in (30, 150, 400, int(tb.rng.integers(1, 300))):
            job = tb.random_job(mode, 3 * s.rows, 20 * s.m, 2 * s.cols)
            sizes = tb.abi.call_bytes(job.mode, job.rows, job.k, job.cols, job.n_reg(s))
            addrs = tb.place(sizes)
            for name, data in tb.operands(job).items():
                tb._bundle(name).write(addrs[name], data.tobytes())
            for d in tb.ddr.values():
                d.allowed = [(addrs[n], addrs[n] + sizes[n]) for n in sizes if tb.args[n]["bundle"] == d.bundle]
            await tb.program(tb.regmap["modes"][mode], job.rows, job.k, job.cols, s.n, addrs)
            await tb.ctrl.write_dword(tb.regmap["gie"]["offset"], 1)      # non-zero before the reset
            await tb.ctrl.write_dword(tb.regmap["ier"]["offset"], 3)
            await tb.start()
            await ClockCycles(dut.ap_clk, when)
            await tb.reset(cycles=3)
            what = f"{mode} reset at {when}"
            ctrl = await tb.read_reg(tb.ctrl_off)
            assert ctrl == 1 << tb.bits["ap_idle"], f"{what}: control 0x{ctrl:x} after reset (want ap_idle only)"
            for reg in ("gie", "ier", "isr"):
                v = await tb.read_reg(tb.regmap[reg]["offset"])
                assert v == 0, f"{what}: {reg} 0x{v:x} after reset"
            for a in tb.regmap["args"]:
                offs = [a["offset"]] + ([a["offset"] + 4] if a["width"] == 64 else []) + \
                    ([a["vld_offset"]] if a["kind"] == "scalar_out" else [])
                for off in offs:
                    v = await tb.read_reg(off)
                    assert v == 0, f"{what}: {a['name']} (0x{off:x}) reads 0x{v:x} after reset"
            assert int(dut.interrupt.value) == 0, f"{what}: interrupt after reset"
            await run_timed(tb, tb.random_job(mode, s.rows + 1, 3 * s.m + 2, s.cols + 1), f"{mode} after reset at {when}")
            if mode == "PRUNE":
                gemm = modes[when % len(_modes(tb))]
                await run_timed(tb, tb.random_job(gemm, s.rows + 2, 2 * s.m + 1, s.cols), f"{gemm} after PRUNE reset at {when}")


@cocotb.test()
async def test_cycle_measurement(dut):
    """Cycles from the ap_start write to ap_done per job, fixed read latency and no pauses
    (SATGEN_KERNEL_CYCLES_GEMMS, SATGEN_KERNEL_CYCLES_OUT, SATGEN_KERNEL_READ_LATENCY). SPARSE and PRUNE
    run at every n of SATGEN_KERNEL_CYCLES_NS (comma list; default: every n of nm.runtime_n), the spec's
    n last among the SPARSE jobs of a GEMM (sim/run.py's dense_over_sparse takes the SPARSE job at the spec's n)."""
    out = os.environ.get("SATGEN_KERNEL_CYCLES_OUT")
    if not out:
        return
    latency = int(os.environ.get("SATGEN_KERNEL_READ_LATENCY", "64"))
    model = MemoryModel(read_latency=latency, stall_rate=0.0)
    tb = KernelTB(dut, "test_cycle_measurement", model=model, stall=0.0)
    await tb.reset()
    gemms = [tuple(int(x) for x in g.split(",")) for g in os.environ["SATGEN_KERNEL_CYCLES_GEMMS"].split(";")]
    jobs = []
    s = tb.spec
    prune = ["PRUNE"] if rtl_prune(s) else []
    env_ns = os.environ.get("SATGEN_KERNEL_CYCLES_NS", "").strip()
    ns = [int(x) for x in env_ns.split(",")] if env_ns else list(tb.regmap["nm"]["runtime_n"])
    ns = sorted(x for x in ns if x != s.n) + ([s.n] if s.sparse else [])
    for m, k, c in gemms:
        for mode in _modes(tb) + prune:
            for n in (ns if mode != "DENSE" else [0]):
                job = tb.random_job(mode, m, k, c, n=n)
                t_wall = get_sim_time("ns")
                cycles = await run_timed(tb, job, f"measure {mode} {m}x{k}x{c} n={n}")
                jobs.append({"mode": mode, "gemm": [m, k, c] if mode != "PRUNE" else [m, k, 0], "cycles": cycles,
                             "n": n if mode != "DENSE" else None,
                             "sim_cycles": int((get_sim_time("ns") - t_wall) // CLOCK_NS)})
    mem = {**model.to_dict(), "read_latency_note": "cycles from the AR handshake to the first R beat",
           "write_latency_note": "cycles from a burst's last W beat to its B response",
           "words_per_cycle_note": "each bundle its own memory: at most one R beat per cycle per bundle"}
    report = {"jobs": jobs, "memory": mem}
    Path(out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


@cocotb.test()
async def test_prune(dut):
    """PRUNE: both copies (FF along k, BP along rows) of random, tied, zero and extreme W of shapes off the
    grid, between GEMM jobs, bit-exact vs hostpy.golden.prune packed by the ABI; or a clean bad_mode refusal."""
    tb = KernelTB(dut, "test_prune")
    await tb.reset()
    s = tb.spec
    if "PRUNE" not in tb.regmap["modes"]:
        return                      # the dense baseline has no PRUNE (test_bad_registers covers mode codes)
    if not rtl_prune(s):
        addrs = {a["name"]: GUARD for a in tb.regmap["args"] if a["kind"] == "ptr"}
        await tb.program(tb.regmap["modes"]["PRUNE"], s.rows, s.m, 0, s.n, addrs)
        await tb.start()
        await tb.wait_done(2000)
        assert await tb.read_reg(tb.args["status"]["offset"]) == 1 << tb.regmap["status_bits"]["bad_mode"]
        return
    shapes = [(1, 1), (s.rows, s.m), (2 * s.rows + 3, 3 * s.m - 1), (s.rows - 1, 5 * s.m + 2)]
    runtime_n = [int(x) for x in tb.rng.permutation(tb.regmap["nm"]["runtime_n"])]
    # every runtime n at least once (random shapes fill up to it), different n back to back
    shapes += [(int(tb.rng.integers(1, 4 * s.rows)), int(tb.rng.integers(1, 8 * s.m)))
               for _ in range(max(cases(2), len(runtime_n) - len(shapes)))]
    kinds = ["random", "ties", "extreme"]
    for i, (rows, k) in enumerate(shapes):
        kind = kinds[i % len(kinds)]
        n = runtime_n[i % len(runtime_n)]
        await run_timed(tb, tb.random_job("PRUNE", rows, k, 0, kind, n=n), f"PRUNE {kind} {rows}x{k} n={n}")
        mode = _modes(tb)[i % len(_modes(tb))]
        n2 = runtime_n[(i + 1) % len(runtime_n)] if mode == "SPARSE" else 0
        await run_timed(tb, tb.random_job(mode, rows, k, s.cols + 1, n=n2), f"{mode} n={n2} after PRUNE")
