"""The cycle model (gen/perf.py), workload lowering (gen/workloads.py), bench output and sweep.

Expected values are computed by hand from the spec's fields and the core formula
(perf.core_cycles, which is sim.cycles.core_cycles once the RTL exists), never copied from a run.
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings, strategies as st

from gen import perf, workloads
from gen.perf import BASELINE_SCHEDULE, PerfError, Schedule, gemm_cost, prune_cost, step_cost
from gen.render import generate
from gen.spec import PRESETS, make_spec, preset

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

def _beats(nbytes: int, spec) -> int:
    return math.ceil(nbytes * 8 / spec.axi_bits)


def test_traffic_by_loop_order_sparse():
    spec = S28
    rows, k, cols = 2 * spec.rows, 8 * spec.m, 2 * spec.cols      # 2 x 2 tiles, k fits one chunk
    slots = rows * (k // spec.m) * spec.n
    a_bytes = slots + math.ceil(slots * spec.idx_bits / 8)          # int8 values + packed indices
    b_bytes = k * cols
    a_st = gemm_cost(spec, "SPARSE", rows, k, cols, Schedule(loop_order="a_stationary"))
    b_st = gemm_cost(spec, "SPARSE", rows, k, cols, Schedule(loop_order="b_stationary"))
    assert a_st.bytes_in == a_bytes + 2 * b_bytes                  # B re-fetched per row tile
    assert b_st.bytes_in == 2 * a_bytes + b_bytes                  # A re-fetched per column tile
    assert a_st.bytes_out == b_st.bytes_out == rows * cols * spec.mem_acc_bits // 8
    assert a_st.mults == rows * cols * (k // spec.m) * spec.n


def test_reduction_longer_than_chunk_refetches_both():
    spec = S28
    k = spec.k_chunk_sparse + spec.m                               # one chunk too many
    rows, cols = 2 * spec.rows, 3 * spec.cols
    c = gemm_cost(spec, "SPARSE", rows, k, cols)
    slots = rows * math.ceil(k / spec.m) * spec.n
    a_bytes = slots + math.ceil(slots * spec.idx_bits / 8)
    assert c.bytes_in == 3 * a_bytes + 2 * k * cols


def test_overlapped_compute_bound_gemm_is_core_plus_first_load_and_last_store():
    spec = S28
    rows, k, cols = 3 * spec.rows, 32 * spec.m, 2 * spec.cols      # compute >> per-tile transfers
    tiles = 3 * 2
    c = gemm_cost(spec, "SPARSE", rows, k, cols, Schedule(loop_order="b_stationary"))
    first_b = _beats(k * spec.cols, spec)                          # stationary block: B of column tile 0
    slots = spec.rows * (k // spec.m) * spec.n
    first_a = max(_beats(slots, spec), _beats(math.ceil(slots * spec.idx_bits / 8), spec))
    last_c = _beats(spec.rows * spec.cols * spec.mem_acc_bits // 8, spec)
    assert c.core_busy == perf.core_cycles(spec, "SPARSE", k, tiles)
    assert c.cycles == perf.core_cycles(spec, "SPARSE", k, tiles) + first_b + first_a + last_c


def test_sequential_schedule_adds_everything_per_tile():
    spec = S28
    rows, k, cols = spec.rows, 4 * spec.n, 2 * spec.cols           # 1 x 2 tiles, dense
    c = gemm_cost(spec, "DENSE", rows, k, cols, BASELINE_SCHEDULE)  # A stationary, no overlap
    a = _beats(rows * k, spec)
    b = _beats(k * spec.cols, spec)
    st = _beats(spec.rows * spec.cols * spec.mem_acc_bits // 8, spec)
    one_tile = perf.core_cycles(spec, "DENSE", k, 1)
    assert c.cycles == a + 2 * (b + one_tile + st)


def test_transfer_bound_when_activation_stream_exceeds_axi():
    # 1:16 on 8 columns needs C*M = 128 B of activations per cycle; a 512-bit port brings 64 B.
    spec = preset("sat_1x16")
    rows, k, cols = 4 * spec.rows, 16 * spec.m, 64 * spec.cols
    c = gemm_cost(spec, "SPARSE", rows, k, cols, Schedule(loop_order="a_stationary"))
    per_tile_b = _beats(k * spec.cols, spec)
    assert per_tile_b > k // spec.m
    assert c.stall > 0 and c.cycles >= 4 * 64 * per_tile_b
    # Offline scheduling keeps B on chip instead and hides the transfers.
    assert gemm_cost(spec, "SPARSE", rows, k, cols).cycles < c.cycles


def test_hls_kernel_fetch_loops_by_hand():
    # hls/sat_kernel.cpp fetch: iteration u loads unit u (load_w: R rows x ceil(nsteps*N/64) beats;
    # load_b: B rows) while emitting unit u-1 (nsteps) and draining the tile of u-2 (R); it costs
    # the longest of them. Units go column tile by column tile, row tiles inside.
    spec = S28
    assert (spec.rows, spec.cols, spec.n, spec.m, spec.axi_bits // spec.mem_data_bits) == (8, 8, 2, 8, 64)
    sched = perf.HLS_KERNEL_SCHEDULE
    # One k chunk (B stationary): 2 row tiles x 3 column tiles, nsteps = 6, load_w = 8 x 1 beat,
    # B block 48 rows, loaded whole first, then per column tile in slices of 24 rows.
    sparse = gemm_cost(spec, "SPARSE", 16, 43, 24, sched)
    first_load = 48
    emits = [max(8, 24, 6), max(8, 24, 6, 8), max(8, 24, 6, 8), max(8, 24, 6, 8),   # columns 0, 1
             max(8, 6, 8), max(6, 8)]                                             # last column
    assert sparse.cycles == first_load + sum(emits) + 8 == 168
    assert sparse.beats == 6 * 6
    # k = 1027 dense takes two chunks; balanced_chunk makes them 514 + 513 (257 steps each,
    # load_w 8 x 9 beats, 520 B rows). One row tile, so each B block serves one unit: 2 column
    # tiles x 2 chunks, the next block's 520 rows loading beside each emit.
    dense = gemm_cost(spec, "DENSE", 8, 1027, 16, sched)
    assert dense.cycles == 520 + max(257, 72, 520) + max(257, 72, 520) + max(257, 72, 520, 8) + 257 + 8 == 2345
    assert dense.bytes_in == 8 * 1027 * 2 + 1027 * 16            # A once per column tile, B once
    # k = 4104 sparse: chunks of 2056 + 2048 (257 + 256 steps; load_w 8 x 9 / 8 x 8 beats; B blocks
    # of 2056 / 2048 rows) over 10 row tiles: panels of M = 8 and 2 row tiles share a B block per
    # chunk. Each block loads in slices while the group before it is emitted (the first one whole).
    panels = gemm_cost(spec, "SPARSE", 80, spec.k_chunk_sparse + 8, 8, sched)
    assert spec.k_chunk_sparse == 4096
    group0 = 8 * max(257, 72, 2048 // 8)          # panel 0, chunk 0: emit; load_w; slices
    group1 = 8 * max(256, 72, 2056 // 8, 8)       # panel 0, chunk 1; drains of finished tiles
    group2 = 2 * max(257, 72, 2048 // 2, 8)       # panel 1 (2 row tiles), chunk 0: half-block slices
    group3 = max(256, 64) + max(256, 8)           # panel 1, chunk 1: nothing left to load
    assert panels.cycles == 2056 + group0 + group1 + group2 + group3 + 8 == 8736
    assert panels.bytes_in == 80 * 513 * 2 + math.ceil(80 * 513 * 2 * 3 / 8) + 4104 * 8 * 2
    # The old fetch (R*nsteps + B rows + nsteps per tile and chunk, nothing overlapped) was far slower.
    assert sparse.cycles < 6 * (8 * 6 + 48 + 6)


def test_launch_split_over_max_k():
    spec = S28
    k = spec.max_k + spec.n
    c = gemm_cost(spec, "DENSE", spec.rows, k, spec.cols)
    assert c.launches == 2
    assert c.mults == spec.rows * spec.cols * k


def test_prune_cost_by_hand():
    spec = S28
    rows, k = 64, 576
    p = prune_cost(spec, rows, k)
    groups = max(rows * math.ceil(k / spec.m), k * math.ceil(rows / spec.m))
    assert p.cycles == max(groups // perf.PRUNE_GROUPS_PER_CYCLE, _beats(rows * k, spec))
    seq = prune_cost(spec, rows, k, parallel=False)        # the HLS kernel: FF pass, then BP pass
    assert seq.cycles == rows * math.ceil(k / spec.m) + k * math.ceil(rows / spec.m)
    with pytest.raises(PerfError, match="dense baseline"):
        prune_cost(PRESETS["dense"], rows, k)
    # The HLS kernel: FF pass (64 x 72 groups), then the BP copy staged in 9 blocks of 64 columns
    # (64 staged rows each) and read back one group (of 8 rows) per cycle: 576 x 8 groups.
    hls = perf.hls_prune_cost(spec, rows, k)
    assert hls.cycles == 64 * 72 + 9 * 64 + 576 * 8 == 9792
    # W taller than the stage (C x abuf_depth x M = 32768 values): BP read in place, M cycles a group.
    tall = perf.hls_prune_cost(spec, 32769, 3)
    assert tall.cycles == 32769 * 1 + 3 * math.ceil(32769 / 8) * 8
    with pytest.raises(PerfError, match="dense baseline"):
        perf.hls_prune_cost(PRESETS["dense"], rows, k)


def test_bad_model_input():
    with pytest.raises(PerfError, match="positive"):
        gemm_cost(S28, "SPARSE", 0, 8, 8)
    with pytest.raises(PerfError, match="SPARSE or DENSE"):
        perf.core_cycles(S28, "PRUNE", 8, 1)
    with pytest.raises(PerfError, match="dense baseline"):
        gemm_cost(PRESETS["dense"], "SPARSE", 8, 8, 8)
    with pytest.raises(PerfError, match="loop_order"):
        Schedule(loop_order="zigzag")
    with pytest.raises(PerfError, match="BDWP needs"):
        step_cost(PRESETS["dense"], "vgg16_cifar", bdwp=True)


@pytest.mark.parametrize("name", ["sat_2x8", "sat_2x4", "sat_1x16"])
def test_step_speedup_never_beats_the_workload_bound(name):
    spec = preset(name)
    for net in workloads.network_names():
        dense = step_cost(spec, net, bdwp=False, batch=4)
        bdwp = step_cost(spec, net, bdwp=True, batch=4)
        assert 1.0 < dense.cycles / bdwp.cycles <= spec.ideal_step_speedup
        assert bdwp.macs == dense.macs
        bd = bdwp.breakdown()
        assert sum(bd.values()) == bdwp.cycles
        # the sequential baseline can only be slower
        assert step_cost(spec, net, bdwp=True, batch=4, schedule=BASELINE_SCHEDULE).cycles >= bdwp.cycles


# ---- bench output and sweep --------------------------------------------------------------------

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
        assert rep["speedup"] == pytest.approx(rep["dense"]["cycles"] / rep["bdwp"]["cycles"])
        assert len(rep["layers"]) == len(workloads.network(name))
    assert isinstance(data["model_vs_rtl"], list)
    for row in data["model_vs_rtl"]:
        assert set(row) >= {"gemm", "model_cycles", "rtl_cycles", "error"}
    for png in data["plots"]:
        assert (out / "reports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_on_the_dense_baseline(tmp_path):
    from gen.bench import run_bench
    out = tmp_path / "dense"
    generate(PRESETS["dense"], out)
    report = run_bench(out, batch=1, rtl=False, plots=False, log=lambda *_: None)
    for rep in report["networks"].values():
        assert rep["speedup"] == 1.0 and rep["ideal"] == 1.0
    assert "bounds" not in report and "schedule_ladder" not in report
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


def test_bench_headline_schedule_choice(bench_out, tmp_path):
    import shutil
    from gen.bench import run_bench
    src, best = bench_out
    out = tmp_path / src.name                         # leave the shared fixture's bench.json alone
    shutil.copytree(src, out)
    hls = run_bench(out, batch=2, rtl=False, plots=False, schedule="hls", log=lambda *_: None)
    for name in workloads.network_names():
        assert hls["networks"][name]["speedup"] == pytest.approx(best["networks"][name]["generated_hls_kernel"]["speedup"])
        # A trip count (no pipeline depths), so it may land on either side of the modelled best,
        # but never beyond what the multipliers can issue.
        for run in ("bdwp", "dense"):
            assert 0 < hls["networks"][name][run]["utilization"] <= 1
    ladder = {r["schedule"]: r for r in best["schedule_ladder"]}
    assert ladder[next(iter(ladder))]["resnet18_cifar"] == pytest.approx(hls["networks"]["resnet18_cifar"]["speedup"])



@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 70), k=st.integers(1, 9000), cols=st.integers(1, 70),
       name=st.sampled_from(["sat_2x8", "sat_1x16", "sat_2x8_kv260", "dense"]), sparse=st.booleans())
@example(rows=1, k=25, cols=4, name="sat_2x8_kv260", sparse=True)   # one tile: overlap must not cost more
def test_model_lower_bounds(rows, k, cols, name, sparse):
    spec = PRESETS[name]
    mode = "SPARSE" if sparse and spec.sparse else "DENSE"
    best = gemm_cost(spec, mode, rows, k, cols)
    seq = gemm_cost(spec, mode, rows, k, cols, BASELINE_SCHEDULE)
    tiles = math.ceil(rows / spec.rows) * math.ceil(cols / spec.cols)
    # Never faster than the core streaming its beats, nor than moving B and C once over their ports.
    assert best.cycles >= best.core_busy >= best.beats == tiles * math.ceil(k / (spec.m if mode == "SPARSE" else spec.n))
    assert best.cycles >= _beats(k * cols * spec.mem_data_bits // 8, spec)
    assert best.cycles >= _beats(rows * cols * spec.mem_acc_bits // 8, spec)
    # Overlapping and choosing the loop order can only help; the traffic is at least each operand once.
    assert seq.cycles >= best.cycles
    slots = math.ceil(k / spec.m) * spec.n if mode == "SPARSE" else k
    assert best.bytes_in >= rows * slots * spec.mem_data_bits // 8 + k * cols * spec.mem_data_bits // 8
