"""Shared pieces of the cocotb testbenches: the spec under test, seeded randomness, clock/reset,
random idle/backpressure generators, and signal packing helpers."""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from gen.spec import ArchSpec, load_spec

CLOCK_NS = 4
# `make sim` runs the full regression (SATGEN_HEAVY=1): more random cases per test than CI.
HEAVY = os.environ.get("SATGEN_HEAVY", "") == "1"


def cases(ci_count: int) -> int:
    """Random cases of a test: ci_count in CI, 4x that in the full regression."""
    return 4 * ci_count if HEAVY else ci_count


def spec_under_test() -> ArchSpec:
    """The spec of the generated output directory the runner points SATGEN_OUT at."""
    out = os.environ.get("SATGEN_OUT")
    if not out:
        raise RuntimeError("SATGEN_OUT is not set: run the testbenches through sim.runner / make sim")
    return load_spec(Path(out) / "spec.json")


def rng_for(test_name: str) -> np.random.Generator:
    """A NumPy generator seeded from cocotb's seed and the test name (reproducible per test)."""
    return np.random.default_rng([int(cocotb.RANDOM_SEED) & 0xFFFFFFFF, sum(map(ord, test_name))])


def random_pauses(rng: np.random.Generator, probability: float):
    """Endless pause pattern (True = pause this cycle) with the given probability per cycle."""
    if probability <= 0.0:
        return itertools.repeat(False)
    return (bool(x) for x in iter(lambda: rng.random() < probability, None))


def quiet_logs(*endpoints) -> None:
    """cocotbext-axi logs every frame at INFO: keep the sim logs readable (and the sims fast)."""
    for e in endpoints:
        e.log.setLevel(logging.WARNING)


def start_clock(dut) -> None:
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())


async def pulse_reset(dut, cycles: int = 3) -> None:
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def expect_silence(dut, cycles: int, what: str) -> None:
    """Input idle, output ready: ``out_valid`` must stay low for ``cycles`` cycles (nothing beyond what was
    sent comes out). For the in_valid/out_ready/out_valid benches (sat_fifo, sat_bbuf)."""
    dut.in_valid.value = 0
    dut.out_ready.value = 1
    for _ in range(cycles):
        await ReadOnly()
        assert not int(dut.out_valid.value), f"{what}: output beyond what was sent"
        await RisingEdge(dut.clk)


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def pack(values, bits: int) -> int:
    """Little-endian pack of signed/unsigned ``values`` into one integer, ``bits`` per field."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack_signed(word: int, bits: int, count: int) -> list[int]:
    half, mask = 1 << (bits - 1), (1 << bits) - 1
    return [(((word >> (i * bits)) & mask) ^ half) - half for i in range(count)]
