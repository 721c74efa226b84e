"""The cycle model (gen/perf.py), workload lowering (gen/workloads.py) and bench output.

Expected values are computed by hand from the spec's fields, buffers packed by hostpy.abi and the
RTL core's cycle formulas (sim.cycles, measured on the RTL core), never copied from a run. These
check the model's code against its documentation; the model's core term is validated against RTL
measurements in tests/test_perf_rtl.py.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings, strategies as st

import numpy as np

from gen import perf, workloads
from gen.memmodel import MemoryModel
from gen.prune_layout import prune_bp_shape
from gen.perf import READ_MAX_BURST, READ_OUTSTANDING, PerfError, Schedule, gemm_cost, prune_cost, step_cost
from hostpy.abi import Abi
from sim import cycles as sim_cycles
from gen.render import generate
from gen.spec import PRESETS, preset

S28 = preset("sat_2x8")


# ---- workloads ---------------------------------------------------------------------------------

def test_ff_macs_per_sample_match_paper():
    # PAPER.md: CIFAR ResNet-18 0.555 GMAC/sample FF, VGG-16 0.313 GMAC/sample.
    assert workloads.ff_macs_per_sample("resnet18_cifar") / 1e9 == pytest.approx(0.555, rel=2e-3)
    assert workloads.ff_macs_per_sample("vgg16_cifar") / 1e9 == pytest.approx(0.313, rel=2e-3)


def test_conv_lowering_shapes():
    layer = workloads.Layer("c", "conv", cin=64, cout=128, kernel=3, hout=16)
    ff, bp, wu = workloads.lower_layer(layer, batch=4, m=8, bdwp=True)
    assert (ff.pass_, ff.rows, ff.k, ff.cols, ff.sparse) == ("FF", 128, 64 * 9, 4 * 256, True)
    assert (bp.pass_, bp.rows, bp.k, bp.cols, bp.sparse) == ("BP", 64 * 9, 128, 4 * 256, True)
    assert (wu.pass_, wu.rows, wu.k, wu.cols, wu.sparse) == ("WU", 128, 4 * 256, 64 * 9, False)
    assert ff.macs == bp.macs == wu.macs == 128 * 576 * 1024
    dense = workloads.lower_layer(layer, batch=4, m=8, bdwp=False)
    assert not any(g.sparse for g in dense)


def test_stem_and_classifier_policies():
    gem = workloads.lower_network("resnet18_cifar", batch=2, m=8, bdwp=True)
    stem = [g for g in gem if g.layer == "conv1"]
    assert [g.pass_ for g in stem] == ["FF", "WU"]                  # input layer: no BP
    assert not stem[0].sparse                                      # Cin=3 not a multiple of 8: dense
    fc = [g for g in gem if g.layer == "fc"]
    assert [g.sparse for g in fc] == [False, False, False]         # classifier stays dense
    padded = workloads.lower_network("resnet18_cifar", batch=2, m=8, bdwp=True, ragged="pad",
                                     dense_classifier=False)
    assert [g.sparse for g in padded if g.layer == "conv1"] == [True, False]
    assert [g.sparse for g in padded if g.layer == "fc"] == [True, True, False]
    # 2:4 groups divide Cout=10 no better: BP of the classifier stays dense under the default policy
    fc4 = [g for g in workloads.lower_network("resnet18_cifar", batch=2, m=4, bdwp=True, dense_classifier=False)
           if g.layer == "fc"]
    assert [g.sparse for g in fc4] == [True, False, False]


def test_deit_attention_dense_and_all_bps_present():
    gem = workloads.lower_network("deit_s", batch=1, m=8, bdwp=True)
    assert {g.layer for g in gem if g.pass_ == "BP"} == {layer.name for layer in workloads.network("deit_s")}
    assert not any(g.sparse for g in gem if g.layer.startswith("attn"))
    qk = [g for g in gem if g.layer == "attn.qk"]
    t, d, h = (workloads.DEIT_S[k] for k in ("tokens", "dim", "heads"))
    assert (qk[0].rows, qk[0].k, qk[0].cols, qk[0].count) == (t, d // h, t, h * workloads.DEIT_S["blocks"])


def test_bad_workload_input():
    with pytest.raises(workloads.WorkloadError, match="unknown network"):
        workloads.network("alexnet")
    with pytest.raises(workloads.WorkloadError, match="ragged"):
        workloads.lower_network("vgg16_cifar", batch=1, m=8, bdwp=True, ragged="crop")
    with pytest.raises(workloads.WorkloadError, match="batch"):
        workloads.lower_network("vgg16_cifar", batch=0, m=8, bdwp=True)
    with pytest.raises(workloads.WorkloadError, match="cin"):
        workloads.Layer("x", "conv", cin=0, cout=1)


# ---- the model, by hand ------------------------------------------------------------------------
# A hand computation checks that the code does what docs/PERF.md says; it validates nothing about
# the hardware. The sizes are checked against buffers really packed by hostpy.abi, the core term
# against sim.cycles (measured on the RTL core by tests/test_perf_rtl.py and tests/test_rtl.py).

def test_kernel_call_charges_operands_at_their_packed_abi_v2_size():
    spec = S28
    abi = Abi(spec)
    rng = np.random.default_rng(0)
    for mode, rows, k, cols in (("SPARSE", 20, 100, 27), ("DENSE", 9, 45, 17), ("SPARSE", 8, 8 * (spec.abuf_depth + 1), 8)):
        g = -(-k // spec.m)
        if mode == "SPARSE":
            vals = rng.integers(-128, 128, (rows, g, spec.n))
            idx = np.sort(rng.choice(spec.m, (rows, g, spec.n)), axis=-1)
            v, i = abi.pack_compressed(vals, idx, spec.rows)
            a_bytes = v.size + i.size
        else:
            a_bytes = abi.pack_grouped(rng.integers(-128, 128, (rows, k)), spec.rows).size
        b_bytes = abi.pack_grouped(rng.integers(-128, 128, (cols, k)), spec.cols).size   # B^T by columns
        c_bytes = abi.pack_result(np.zeros((rows, cols), np.int64)).size
        n_rt, n_ct = -(-rows // spec.rows), -(-cols // spec.cols)
        call = perf.kernel_call(spec, mode, rows, k, cols, b_reuse=True)
        streaming = g > spec.abuf_depth
        assert call.b_streaming_calls == int(streaming)
        # A once per column tile; B once (ping-pong reuse) or once per output tile when streaming.
        assert call.bytes_in == a_bytes * n_ct + b_bytes * (n_rt if streaming else 1), (mode, rows, k, cols)
        assert call.bytes_out == c_bytes


def test_kernel_call_compute_bound_by_hand():
    spec = S28
    assert (spec.rows, spec.cols, spec.n, spec.m, spec.axi_bits) == (8, 8, 2, 8, 512)
    # 2 x 3 output tiles, k = 512: G = 64 groups. Per row tile: 64 value records of 128 b (4 per word)
    # = 16 words, 64 index records of 48 b (10 per word) = 7 words; a B column tile: 64 words; a
    # result tile 8 x 8 x 32 b = 4 words. Per column tile the core computes 2 x 64 cycles and the
    # memory moves at most 64 words on one bank: compute bound. Exposed: read latency + sat_bbuf's
    # 3-cycle read pipeline (the first row tile consumes B as it arrives: no fill wait); the last
    # result tile's 4 words + the write response at the end.
    mem = MemoryModel()
    call = perf.kernel_call(spec, "SPARSE", 16, 512, 24, mem, b_reuse=True)
    core = sim_cycles.core_cycles(spec, "SPARSE", 512, 6)
    assert call.core_busy == core
    assert call.stalls == {}
    fixed = perf.KERNEL_CALL_OVERHEAD             # the kernel's pipeline, calibrated on the RTL kernel
    assert perf.BBUF_PIPELINE == 3
    assert call.start == fixed + mem.read_latency + 3 and call.tail == 4 + mem.write_latency
    assert call.cycles == perf.kernel_call_cycles(spec, "SPARSE", 16, 512, 24, mem, b_reuse=True) == core + fixed + 64 + 3 + 4 + 32
    # Without the buffer B streams: no pipeline, B re-read per output tile (one word per cycle keeps up).
    assert perf.kernel_call_cycles(spec, "SPARSE", 16, 512, 24, mem, b_reuse=False) == core + fixed + 64 + 4 + 32
    # Only the exposed latencies move with them (the masters' in-flight words still cover the round trip).
    slower = MemoryModel(read_latency=100, write_latency=40)
    assert perf.kernel_call_cycles(spec, "SPARSE", 16, 512, 24, slower, b_reuse=True) == call.cycles + 36 + 8


def test_first_b_column_tile_of_two_word_records_waits_for_its_fill():
    from gen.spec import PRESETS
    from hostpy.abi import Abi
    spec = PRESETS["sat_1x16"]
    abi = Abi(spec)
    assert abi.grouped_records(spec.cols).words_per_record == 2        # C x M int8 = 1024 b: two words
    # 3 row tiles, G = 64: the first row tile's B (128 words at one word per cycle) arrives in 128
    # cycles against 64 of compute: 64 cycles of wait; the next row tiles replay it from the buffer.
    call = perf.kernel_call(spec, "SPARSE", 24, 64 * spec.m, 8)
    assert call.stalls == {"b master, first B column tile": 64}


def test_bundles_on_one_channel_share_its_bandwidth():
    spec = S28
    # One row tile, 3 column tiles, G = 64: per column tile the core computes 64 cycles; one shared
    # channel moves A (16 + 7 words), one B column tile (64: with one row tile each column tile's B
    # streams in while it computes) and the result (4) = 91 words: 27 stall cycles per column tile.
    shared = perf.kernel_call(spec, "SPARSE", 8, 512, 24, MemoryModel(banking="shared"), b_reuse=True)
    assert shared.stalls == {"shared channel (a_val+a_idx+b+c)": 3 * 27}
    per_bank = perf.kernel_call(spec, "SPARSE", 8, 512, 24, MemoryModel(banking="per_bank"), b_reuse=True)
    assert per_bank.stalls == {} and shared.cycles == per_bank.cycles + 81


def test_bank_mapping_comes_from_the_regmap(monkeypatch):
    spec = S28
    banks = perf.pointer_banks(spec)
    assert len({banks[a] for a in ("a_val", "a_idx", "b", "c")}) == 4   # sat_2x8: four DDR4 channels
    # Put B on A's bank (as a board with fewer channels would): A values (16 words) + a B column
    # tile (64; one row tile: each column tile's own) on one bank against 64 compute cycles: 16
    # stall cycles per column tile.
    monkeypatch.setattr(perf, "pointer_banks", lambda s: dict(banks, b=banks["a_val"]))
    perf._kernel_call.cache_clear()
    try:
        call = perf.kernel_call(spec, "SPARSE", 8, 512, 24, b_reuse=True)
        assert call.stalls == {f"bank {banks['a_val']} (a_val+b)": 3 * 16}
    finally:
        perf._kernel_call.cache_clear()


def test_b_streaming_and_read_latency_beyond_the_in_flight_words():
    spec = S28
    g = spec.abuf_depth + 88                      # a B column tile deeper than a buffer bank
    k = g * spec.m
    assert perf.kernel_call(spec, "SPARSE", 8, (g - 88) * spec.m, 8, b_reuse=True).b_streaming_calls == 0
    fast = perf.kernel_call(spec, "SPARSE", 8, k, 8, b_reuse=True)
    assert fast.b_streaming_calls == 1 and fast.stalls == {}   # one word per cycle meets one record per cycle
    # 4 bursts of 64 words in flight (F = 256) over a 448 + 64 = 512 cycle round trip: the first
    # window arrives after the call's start (which holds the latency), each later window one round
    # trip after the one before, one word per cycle. The g = 600 words of the streamed B have
    # arrived 2 x 512 + 88 cycles after the first, against g cycles of compute.
    lat = READ_OUTSTANDING * READ_MAX_BURST * 2 - READ_MAX_BURST
    slow = perf.kernel_call(spec, "SPARSE", 8, k, 8, MemoryModel(read_latency=lat), b_reuse=True)
    assert slow.stalls == {"b master, B streaming": 2 * 512 + (g - 1 - 2 * 256) + 1 - g}
    # Without B reuse every call streams B; with it only over-deep column tiles do.
    assert perf.gemm_cost(spec, "SPARSE", 32, 512, 32, Schedule(b_reuse=False)).b_streaming_calls == 1
    assert perf.gemm_cost(spec, "SPARSE", 32, 512, 32, Schedule(b_reuse=True)).b_streaming_calls == 0


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x8_kv260", "sat_1x16", "sat_2x4", "sat_2x8_int16", "sat_2x8_vu9p",
                                  "dense"])
def test_kernel_validation_calls_prune_where_the_kernel_runs_it(name):
    # PRUNE calls exactly where the RTL kernel runs PRUNE, at n_hw and at larger runtime n; the
    # memory-bound one is bound by the shared channel, the others by the core or the record feed.
    spec = PRESETS[name]
    prunes = [c for c in perf.kernel_validation_calls(spec) if c["mode"] == "PRUNE"]
    assert bool(prunes) == (prune_bp_shape(spec) is not None)
    if not prunes:
        return
    assert {None, spec.m - 1} <= {c["n"] for c in prunes} and all(c["k"] <= spec.max_k for c in prunes)
    for c in prunes:
        g = perf.prune_call(spec, c["rows"], c["k"], c["memory"], n=c["n"])
        mem_stalls = [key for key in g.stalls if not key.startswith("W record feed")]
        if c["kind"] == "prune_bandwidth":
            assert mem_stalls and "shared channel" in mem_stalls[0], (c, g.stalls)
        else:
            assert not mem_stalls, (c, g.stalls)


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x8_kv260", "sat_1x16", "dense"])
def test_kernel_validation_calls_exercise_their_terms(name):
    # The calls handed to the whole-RTL-kernel measurement each exercise the term they name: the
    # memory-bound ones stall on the resource they are about, the others do not stall.
    spec = PRESETS[name]
    calls = perf.kernel_validation_calls(spec)
    assert calls and all(c["k"] <= spec.max_k for c in calls)
    if not spec.sparse:
        assert {c["mode"] for c in calls} == {"DENSE"}
    for c in calls:
        if c["mode"] == "PRUNE":
            continue                     # test_kernel_validation_calls_prune_where_the_kernel_runs_it
        else:
            g = perf.kernel_call(spec, c["mode"], c["rows"], c["k"], c["cols"], c["memory"])
        keys = " ".join(g.stalls)
        if c["kind"] == "shared":
            assert "shared channel" in keys, (c, g.stalls)
        elif c["kind"] in ("read_latency", "bandwidth"):
            assert "b master, B streaming" in keys, (c, g.stalls)
        elif c["kind"] == "write_latency":
            assert "c master" in keys, (c, g.stalls)
        elif spec.name == "sat_2x8":
            assert g.stalls == {}, (c, g.stalls)
        if c["kind"] in ("b_streaming", "read_latency", "bandwidth"):
            assert g.b_streaming_calls == 1


def test_launch_split_over_max_k():
    spec = S28
    k = spec.max_k + spec.n
    c = gemm_cost(spec, "DENSE", spec.rows, k, spec.cols)
    assert c.launches == 2
    assert c.mults == spec.rows * spec.cols * k
    assert c.cycles == (perf.kernel_call_cycles(spec, "DENSE", spec.rows, spec.max_k, spec.cols)
                        + perf.kernel_call_cycles(spec, "DENSE", spec.rows, spec.n, spec.cols))


def test_prune_call_by_hand():
    spec = S28
    rows, k = 64, 576
    mem = MemoryModel()
    p = prune_cost(spec, rows, k)
    # One core job: FF pass, 64 x 72 groups through the C = 8 prune lanes (576 beats), W = 8 row
    # tiles x 72 one-word records; BP pass, 576 column lanes x 8 groups (576 beats), W read again.
    # prune_cycles (the RTL formula) of all the groups; no pass moves more than 576 words per bank.
    # Start: the kernel's pipeline and the read latency; end: the BP copy's last bursts (values: 72
    # tiles x 2 words = 144 words, its last burst 16 words) and the write response.
    core = sim_cycles.prune_cycles(spec, 64 * 72 + 576 * 8)
    fixed = perf.KERNEL_CALL_OVERHEAD
    assert p.stalls == {} and p.core_busy == core
    assert p.cycles == fixed + mem.read_latency + core + 16 + mem.write_latency + perf.PRUNE_OUTPUT_PIPELINE
    assert p.bytes_in == 2 * Abi(spec).call_bytes("PRUNE", rows, k, 1)["a_val"]
    # Half the bandwidth: W's 576 words take 1152 cycles in each pass, the last burst 32.
    half = perf.prune_call(spec, rows, k, MemoryModel(words_per_cycle=0.5))
    assert half.cycles == (fixed + mem.read_latency + core + 2 * (1152 - 576) + 32 + mem.write_latency
                           + perf.PRUNE_OUTPUT_PIPELINE)
    # One shared channel at half a word per cycle: W twice and all four copies on it; the BP copy's
    # last burst (16 words) is in the tail, so the passes wait for the channel's time minus it.
    shared = perf.prune_call(spec, rows, k, MemoryModel(words_per_cycle=0.5, banking="shared"))
    size = Abi(spec).call_bytes("PRUNE", rows, k, 1)
    words = (2 * size["a_val"] + sum(size[a] for a in ("ff_val", "ff_idx", "bp_val", "bp_idx"))) // 64
    assert shared.stalls == {"shared channel (a_val+ff_val+ff_idx+bp_val+bp_idx)": 2 * words - 32 - 1152}
    assert shared.cycles == half.cycles - 2 * (1152 - 576) + 2 * words - 32 - 1152
    with pytest.raises(PerfError, match="dense baseline"):
        prune_cost(PRESETS["dense"], rows, k)
    # W beyond the call limits: several PRUNE calls.
    big = prune_cost(spec, 8, spec.max_k + 8)
    assert big.launches == 2
    assert big.cycles == perf.prune_call(spec, 8, spec.max_k).cycles + perf.prune_call(spec, 8, 8).cycles


def test_bad_model_input():
    with pytest.raises(PerfError, match="positive"):
        gemm_cost(S28, "SPARSE", 0, 8, 8)
    with pytest.raises(PerfError, match="SPARSE or DENSE"):
        perf.core_cycles(S28, "PRUNE", 8, 1)
    with pytest.raises(PerfError, match="SPARSE or DENSE"):
        perf.kernel_call(S28, "PRUNE", 8, 8, 8)
    with pytest.raises(PerfError, match="dense baseline"):
        gemm_cost(PRESETS["dense"], "SPARSE", 8, 8, 8)
    with pytest.raises(PerfError, match="max_k"):
        perf.kernel_call(S28, "DENSE", 8, S28.max_k + 1, 8)
    with pytest.raises(PerfError, match="MemoryModel"):
        perf.kernel_call(S28, "DENSE", 8, 8, 8, mem={"read_latency": 1})
    with pytest.raises(PerfError, match="fetch"):
        Schedule(fetch="dma")
    with pytest.raises(PerfError, match="BDWP needs"):
        step_cost(PRESETS["dense"], "vgg16_cifar", bdwp=True)


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x4", "sat_1x16"])
def test_step_speedup_never_beats_the_workload_bound(name):
    from gen.bench import workload_ideal
    spec = preset(name)
    shared = Schedule(memory=MemoryModel(banking="shared"))
    for net in workloads.network_names():
        dense = step_cost(spec, net, bdwp=False, batch=4)
        bdwp = step_cost(spec, net, bdwp=True, batch=4)
        assert 1.0 < dense.cycles / bdwp.cycles <= workload_ideal(spec, net, 4) <= spec.ideal_step_speedup
        assert bdwp.macs == dense.macs
        bd = bdwp.breakdown()
        assert sum(bd.values()) == bdwp.cycles
        assert bd["memory_stalls"] == sum(bdwp.stalls().values())
        # one shared channel can only be slower than a channel per bank
        assert step_cost(spec, net, bdwp=True, batch=4, schedule=shared).cycles >= bdwp.cycles


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x8_kv260"])
def test_hls_kernel_figures_are_gen_hls_schedule(name):
    # The HLS kernel's figures come from gen/hls_schedule.py (checked against the C-simulated
    # kernel's loop counters in tests/test_csim.py); perf only books them into its breakdown.
    from gen import hls_schedule
    spec = PRESETS[name]
    sched = perf.HLS_KERNEL_SCHEDULE
    for mode, shape in (("SPARSE", (20, 100, 27)), ("DENSE", (9, 45, 17)), ("SPARSE", (8, 8 * (spec.abuf_depth + 1), 8)),
                        ("DENSE", (8, spec.max_k + 3, 8))):
        g = gemm_cost(spec, mode, *shape, sched)
        h = hls_schedule.gemm_cycles(spec, mode, *shape)
        assert (g.cycles, g.beats, g.launches) == (h.cycles, h.steps, h.calls)
        assert g.cycles == g.beats + g.start + g.tail + sum(g.stalls.values())
    for net in ("resnet18_cifar", "deit_s"):
        ref = hls_schedule.step_speedup(spec, net, 2)
        bd = step_cost(spec, net, bdwp=True, batch=2, schedule=sched)
        de = step_cost(spec, net, bdwp=False, batch=2, schedule=sched)
        assert (bd.cycles, de.cycles) == (ref["bdwp_trip_cycles"], ref["dense_trip_cycles"])
        assert sum(bd.breakdown().values()) == bd.cycles
    assert perf.hls_prune_cost(spec, 64, 576).cycles == hls_schedule.prune_schedule(spec, 64, 576).cycles
    with pytest.raises(PerfError, match="dense baseline"):
        perf.hls_prune_cost(PRESETS["dense"], 64, 576)



# ---- bench output ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench_out(tmp_path_factory):
    from gen.bench import run_bench
    out = tmp_path_factory.mktemp("bench") / "sat_2x8"
    generate(S28, out)
    report = run_bench(out, batch=2, rtl=False, plots=True, log=lambda *_: None)
    return out, report


def test_bench_json_schema(bench_out):
    out, report = bench_out
    data = json.loads((out / "reports" / "bench.json").read_text())
    assert set(data["networks"]) == {"resnet18_cifar", "vgg16_cifar", "deit_s"}
    for name, rep in data["networks"].items():
        for key in ("speedup", "ideal", "utilization"):
            assert isinstance(rep[key], float), (name, key)
        assert rep["ideal"] == S28.ideal_step_speedup
        assert rep["speedup"] == pytest.approx(rep["dense"]["modelled_cycles"] / rep["bdwp"]["modelled_cycles"])
        assert "modelled" in rep["figure"]
        assert len(rep["layers"]) == len(workloads.network(name))
        # The HLS kernel's figure beside it, named for what it is.
        hls = rep["generated_hls_kernel"]
        assert isinstance(hls["speedup"], float) and "trip-count cycles" in hls["figure"] and "II" in hls["figure"]
        assert hls["speedup"] == pytest.approx(hls["dense_trip_cycles"] / hls["bdwp_trip_cycles"])
        split_hls = data["bounds"]["generated_hls_kernel"][name]
        assert sum(split_hls["cycles_lost"].values()) == pytest.approx(split_hls["gap_cycles"])
        # The gap split adds up to the gap (speedup without a cause >= speedup for a cause that costs).
        split = data["bounds"]["rtl_kernel"][name]
        assert sum(split["cycles_lost"].values()) == pytest.approx(split["gap_cycles"])
        assert split["speedup"] == pytest.approx(rep["speedup"])
    assert data["memory"] == MemoryModel().to_dict()
    calls = data["kernel_calls"]
    assert len(calls) == len(perf.kernel_validation_calls(S28))
    for row in calls:
        assert row["modelled_cycles"] >= row["modelled_core_term"] + row["modelled_start"] + row["modelled_tail"]
        assert row["measured_rtl_kernel_cycles"] is None            # not measured here (yet)
    assert data["bundle_banks"] == perf.pointer_banks(S28)
    assert isinstance(data["model_vs_rtl"], list)
    for row in data["model_vs_rtl"]:
        assert set(row) >= {"gemm", "modelled_core_cycles", "measured_rtl_core_cycles", "error"}
    for png in data["plots"]:
        assert (out / "reports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Runtime N on this one kernel: every n of nm.runtime_n, then n = M (DENSE mode).
    rows = data["runtime_n"]
    assert [r["n"] for r in rows] == list(range(1, S28.m + 1)) and {r["m"] for r in rows} == {S28.m}
    for r in rows:
        assert r["speedup"] == pytest.approx(r["dense_cycles"] / r["cycles"], rel=1e-3)
    at = {r["n"]: r["speedup"] for r in rows}
    assert at[1] == at[2] > at[3] == at[4] > at[7] and at[S28.m] == 1.0
    # hostpy.plan runs DENSE where SPARSE + PRUNE cost no less (n = 7: 4 records per group = M/n_hw).
    planned = {r["n"]: r.get("planned_speedup") for r in rows}
    assert at[7] < 1.0 == planned[7] and all(planned[n] == at[n] for n in range(1, 7))
    assert at[2] == pytest.approx(data["networks"][data["runtime_n_network"]]["speedup"], rel=1e-3)
    plan = data["layerwise_plan"]
    assert {la["n"] for la in plan["layers"]} >= {"dense", "1:8", "4:8"} and at[4] < plan["speedup"] < at[1]


def test_bench_on_the_dense_baseline(tmp_path):
    from gen.bench import run_bench
    out = tmp_path / "dense"
    generate(PRESETS["dense"], out)
    report = run_bench(out, batch=1, rtl=False, plots=False, log=lambda *_: None)
    for rep in report["networks"].values():
        assert rep["speedup"] == 1.0 and rep["ideal"] == 1.0
    assert "bounds" not in report and "variants" not in report
    assert {p["arch"] for p in report["presets"]} <= {n for n, s in PRESETS.items() if s.sparse}


def test_bench_needs_a_generated_project(tmp_path):
    import click
    from gen.bench import run_bench
    with pytest.raises(click.ClickException, match="generate the project first"):
        run_bench(tmp_path / "nothing", rtl=False, plots=False, log=lambda *_: None)


def test_resource_report_reads_synth_json_of_each_preset(tmp_path):
    from gen.bench import network_report, resource_report
    figs = {"lut": 2000, "ff": 1000, "dsp": 128, "bram": 0}
    for name in ("sat_2x8", "dense"):
        generate(PRESETS[name], tmp_path / name)
        (tmp_path / name / "reports").mkdir(exist_ok=True)
        (tmp_path / name / "reports" / "synth.json").write_text(json.dumps(
            {"arch": name, "core": figs, "pe": dict(figs, lut=30), "dense_pe": dict(figs, lut=20)}))
    (tmp_path / "sat_2x4" / "reports").mkdir(parents=True)   # a stale report of another arch is ignored
    (tmp_path / "sat_2x4" / "reports" / "synth.json").write_text(json.dumps({"arch": "other", "core": figs}))
    rows = {r["arch"]: r for r in resource_report(S28, tmp_path / "sat_2x8", batch=1)}
    assert set(rows) == {"sat_2x8", "dense"}
    sparse_gops = network_report(S28, "resnet18_cifar", 1)["bdwp"]["effective_gops"]
    dense_gops = network_report(PRESETS["dense"], "resnet18_cifar", 1)["dense"]["effective_gops"]
    assert rows["sat_2x8"]["gops_per_dsp"] == pytest.approx(sparse_gops / 128)
    assert rows["dense"]["gops_per_klut"] == pytest.approx(dense_gops / 2.0)
    assert rows["sat_2x8"]["pe_lut_overhead"] == pytest.approx(0.5)


def test_bench_variants_and_memory_choice(bench_out, tmp_path):
    import shutil
    from gen.bench import VARIANTS, run_bench
    src, per_bank = bench_out
    out = tmp_path / src.name                         # leave the shared fixture's bench.json alone
    shutil.copytree(src, out)
    shared = run_bench(out, batch=2, rtl=False, plots=False, memory=MemoryModel(banking="shared"),
                       log=lambda *_: None)
    variants = {r["variant"]: r for r in per_bank["variants"]}
    assert len(variants) == len(VARIANTS)
    for name in workloads.network_names():
        # the headline row is the headline; the shared-channel row is what --banking shared reports
        assert variants[VARIANTS[0][0]][name] == pytest.approx(per_bank["networks"][name]["speedup"])
        assert variants[VARIANTS[1][0]][name] == pytest.approx(shared["networks"][name]["speedup"])
        assert shared["networks"][name]["bdwp"]["modelled_cycles"] >= per_bank["networks"][name]["bdwp"]["modelled_cycles"]
        for run in ("bdwp", "dense"):
            assert 0 < per_bank["networks"][name][run]["utilization"] <= 1


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 70), k=st.integers(1, 9000), cols=st.integers(1, 70),
       name=st.sampled_from(["sat_2x8", "sat_1x16", "sat_2x8_kv260", "dense"]), sparse=st.booleans(),
       latency=st.integers(1, 600), wpc=st.sampled_from([1.0, 0.5, 0.3]))
@example(rows=1, k=25, cols=4, name="sat_2x8_kv260", sparse=True, latency=64, wpc=1.0)
def test_model_lower_bounds(rows, k, cols, name, sparse, latency, wpc):
    spec = PRESETS[name]
    mode = "SPARSE" if sparse and spec.sparse else "DENSE"
    mem = MemoryModel(read_latency=latency, words_per_cycle=wpc)
    call = perf.kernel_call(spec, mode, rows, k, cols, mem)
    tiles = math.ceil(rows / spec.rows) * math.ceil(cols / spec.cols)
    # Never faster than the core (the RTL formula) nor than the first read's latency plus it.
    assert call.cycles >= call.core_busy + latency
    assert call.core_busy == sim_cycles.core_cycles(spec, mode, k, tiles) >= call.beats
    # Nor than moving every word the call reads and writes (its ABI v2 sizes) over its bank once,
    # or over one channel when all bundles share it.
    wb = spec.axi_bits // 8
    size = Abi(spec).call_bytes(mode, rows, k, cols)
    for arg, nbytes in size.items():
        assert call.cycles >= nbytes / wb / wpc
    shared = perf.kernel_call(spec, mode, rows, k, cols, MemoryModel(read_latency=latency, words_per_cycle=wpc,
                                                                     banking="shared"))
    assert shared.cycles >= (call.bytes_in + call.bytes_out) / wb / wpc
    assert shared.cycles >= call.cycles
    # Less bandwidth or more latency can only cost.
    assert perf.kernel_call_cycles(spec, mode, rows, k, cols, MemoryModel(read_latency=latency + 50,
                                                                          words_per_cycle=wpc)) > call.cycles
    if wpc < 1.0:
        assert call.cycles >= perf.kernel_call_cycles(spec, mode, rows, k, cols, MemoryModel(read_latency=latency))

