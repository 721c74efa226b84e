"""End-to-end training step (gen/e2e.py): accelerator modelled + host measured + PCIe modelled."""
from __future__ import annotations

import json

import pytest

from gen import e2e
from gen.e2e import HOST_PARTS, HostTimer, end_to_end, network_step
from gen.perf import step_cost
from gen.spec import SpecError, make_spec, preset
from gen.workloads import Layer

S28 = preset("sat_2x8")


class CountingTimer(HostTimer):
    """Measures nothing: every host call costs 1 ms, and the calls are counted per function."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, int] = {}

    def _time(self, key, setup, fn):
        self.calls[key[0]] = self.calls.get(key[0], 0) + 1
        return 1e-3


@pytest.fixture(scope="module")
def resnet():
    timer = HostTimer()
    return end_to_end(S28, "resnet18_cifar", 2, timer), timer


def test_step_is_accelerator_plus_host_plus_pcie(resnet):
    r, timer = resnet
    for mode, bdwp in (("bdwp", True), ("dense", False)):
        s = r[mode]
        assert s["accelerator_s_modelled"] == pytest.approx(step_cost(S28, "resnet18_cifar", bdwp=bdwp, batch=2).seconds())
        assert s["host_s_measured_total"] == pytest.approx(sum(s["host_s_measured"].values()))
        assert s["step_s"] == pytest.approx(s["accelerator_s_modelled"] + s["host_s_measured_total"] + s["pcie_s_modelled"])
        assert s["pcie_s_modelled"] == pytest.approx(s["pcie_bytes"] / 12e9)
        assert all(v > 0 for k, v in s["host_s_measured"].items() if k not in ("partial_sums",)), s["host_s_measured"]
    assert r["end_to_end_speedup"] == pytest.approx(r["dense"]["step_s"] / r["bdwp"]["step_s"])
    assert r["accelerator_only_speedup"] == pytest.approx(
        r["dense"]["accelerator_s_modelled"] / r["bdwp"]["accelerator_s_modelled"])
    # BDWP's host work is dense's plus the masks and the SR-STE decay: end to end gains less.
    assert r["bdwp"]["host_s_measured"]["optimizer"] > r["dense"]["host_s_measured"]["optimizer"]
    assert r["end_to_end_speedup"] < r["accelerator_only_speedup"]
    # Taking every host part off leaves accelerator + PCIe, closer to the accelerator-only figure.
    assert r["end_to_end_speedup"] < r["speedup_if_on_accelerator"]["all_host"] <= r["accelerator_only_speedup"]
    assert set(r["dominant_host_parts"]) <= set(HOST_PARTS)
    assert len(timer.cache) > 10             # each distinct (function, shape) measured once


def test_host_calls_and_pcie_bytes_of_one_conv_layer_by_hand():
    """A 3x3 conv, Cin 16, Cout 32, 8x8 output, batch 4: count the calls and bytes DeviceEngine makes."""
    layer = Layer("c", "conv", cin=16, cout=32, kernel=3, hout=8, count=2)
    red, pos, cout = 16 * 9, 4 * 64, 32
    for bdwp in (True, False):
        t = CountingTimer()
        parts = e2e._layer_host(S28, layer, 4, bdwp, t)
        assert t.calls["im2col"] == 1 and t.calls["col2im"] == 1
        assert t.calls["quantize"] == 5         # W, X (FF); dY (BP); dY, X (WU)
        assert t.calls["dequantize"] == 3       # Y, dX, dW
        assert "partial_sums" not in t.calls    # batch*H*W = 256 <= max_k
        assert parts["quantize"] == pytest.approx(2 * 5e-3)        # count = 2 copies
        w = cout * red * (1 if bdwp else 2)     # dense sends W and W^T
        want = 2 * ((red * pos + cout * pos * 4) + (cout * pos + red * pos * 4) + ((cout + red) * pos + cout * red * 4) + w)
        assert parts["pcie_bytes"] == want
        assert t.calls.get("bdwp_masks_decay", 0) == (1 if bdwp else 0)
        assert t.calls["abi_gemm"] == 3                              # FF, BP, WU: A, B packed, result unpacked
        assert t.calls.get("abi_prune", 0) == (1 if bdwp else 0)    # BDWP: one PRUNE per layer and step
        assert parts["abi_pack"] == pytest.approx(2 * (3 + (1 if bdwp else 0)) * 1e-3)


class KeyTimer(CountingTimer):
    """CountingTimer that also keeps every key it was asked for."""

    def __init__(self):
        super().__init__()
        self.keys: list[tuple] = []

    def _time(self, key, setup, fn):
        self.keys.append(key)
        return super()._time(key, setup, fn)


def test_sparse_calls_take_a_from_prune_as_hostpy_does():
    """BDWP's FF/BP SPARSE calls skip A's packing exactly where hostpy.accel.prune_reuse says PRUNE's blocks are theirs."""
    from hostpy.accel import default_tile, prune_reuse
    layer = Layer("c", "conv", cin=16, cout=32, kernel=3, hout=8)          # W [32, 144]
    for spec, want in ((S28, {"FF": True, "BP": True}),
                       # max_k = 128 < Cin*9 = 144: two PRUNE blocks along Cin; BP's lanes (Cin) are one block
                       (make_spec(name="small_k", max_k=128), {"FF": True, "BP": False})):
        assert prune_reuse(spec, default_tile(spec), 32, 144) == {p.lower(): v for p, v in want.items()}
        t = KeyTimer()
        e2e._layer_host(spec, layer, 4, True, t)
        got = {(k[7], k[8], k[9]): k[-1] for k in t.keys if k[0] == "abi_gemm"}
        assert got == {(32, 144, 256): want["FF"], (144, 32, 256): want["BP"], (32, 256, 144): False}
        t = KeyTimer()
        e2e._layer_host(spec, layer, 4, False, t)                             # dense: nothing from PRUNE
        assert all(k[-1] is False for k in t.keys if k[0] == "abi_gemm")


def test_a_split_reduction_adds_partial_sums_on_the_host():
    spec = make_spec(name="small_k", max_k=128)
    layer = Layer("fc", "fc", cin=64, cout=16, tokens=100)
    t = CountingTimer()
    parts = e2e._layer_host(spec, layer, 4, True, t)         # WU reduction 400 > 128: 4 launches
    assert t.calls["partial_sums"] == 1 and parts["partial_sums"] == pytest.approx(1e-3)
    assert "im2col" not in t.calls and "col2im" not in t.calls


def test_partial_sum_measurement_runs_the_real_code():
    assert HostTimer().partial_sums(64, 64, 3, 32, "int32") >= 0.0


def test_abi_measurements_run_the_real_code():
    """The ABI timings call hostpy.abi on operands of the given shapes (a wrong shape raises)."""
    t = HostTimer()
    assert t.abi_gemm(S28, 10, 27, 33, True) >= 0.0 and t.abi_gemm(S28, 10, 27, 33, False) >= 0.0
    assert t.abi_prune(S28, 10, 27) >= 0.0
    assert t.abi_gemm(S28, 10, 27, 33, True, a_from_prune=True) >= 0.0
    assert {k[0] for k in t.cache} == {"abi_gemm", "abi_prune"} and len(t.cache) == 4
    with pytest.raises(ValueError, match="a_from_prune"):
        t.abi_gemm(S28, 10, 27, 33, False, a_from_prune=True)


def test_attention_gemms_quantize_both_operands():
    layer = Layer("qk", "attn", rows=10, k=4, cols=10, heads=2)
    t = CountingTimer()
    parts = e2e._layer_host(S28, layer, 3, True, t)
    n = 2 * 3                                       # heads x batch launches per GEMM, 3 GEMMs
    assert parts["quantize"] == pytest.approx(3 * n * 2e-3) and parts["dequantize"] == pytest.approx(3 * n * 1e-3)


def test_pcie_bandwidth_scales_transfers():
    t = CountingTimer()
    a = network_step(S28, "vgg16_cifar", 1, True, t, pcie_gbps=12.0)
    b = network_step(S28, "vgg16_cifar", 1, True, t, pcie_gbps=6.0)
    assert b["pcie_s_modelled"] == pytest.approx(2 * a["pcie_s_modelled"]) and a["pcie_bytes"] == b["pcie_bytes"]


def test_dense_spec_is_refused():
    with pytest.raises(SpecError, match="dense baseline"):
        end_to_end(preset("dense"), "resnet18_cifar", 1, CountingTimer())


def test_bench_json_gets_end_to_end_speedup(tmp_path, monkeypatch):
    from gen.bench import run_bench
    from gen.render import generate
    monkeypatch.setattr(e2e, "HostTimer", CountingTimer)       # the bench's wiring, not the timings
    out = tmp_path / "sat_2x8"
    generate(S28, out)
    run_bench(out, batch=1, rtl=False, plots=False, log=lambda *_: None)
    data = json.loads((out / "reports" / "bench.json").read_text())
    for name, rep in data["networks"].items():
        assert isinstance(rep["end_to_end_speedup"], float), name
        assert rep["end_to_end"]["accelerator_only_speedup"] == pytest.approx(rep["speedup"])
        assert rep["end_to_end_speedup"] < rep["speedup"]


def test_cli(tmp_path):
    from click.testing import CliRunner
    out = tmp_path / "e2e.json"
    r = CliRunner().invoke(e2e.main, ["--arch", "sat_2x8", "--batch", "1", "--network", "vgg16_cifar", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "end-to-end" in r.output and "vgg16_cifar" in json.loads(out.read_text())["networks"]
    r = CliRunner().invoke(e2e.main, ["--arch", "dense", "--batch", "1"])
    assert r.exit_code == 2 and "dense baseline" in r.output
