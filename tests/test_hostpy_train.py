"""End-to-end training: the csim backend trains bit-identically to the numpy backend (the golden
model) with the same seed, above chance; the float models' gradients are right (finite differences,
MLP and the im2col CNN); the ``python -m hostpy train`` command writes train.json and the plot."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hostpy
from hostpy import suite
from hostpy.__main__ import main
from hostpy.nm import nm_mask
from hostpy.train import DeviceEngine, FloatEngine, Model, RunConfig, _softmax_xent, load_digits_split, train_run

from test_hostpy_helpers import arch_dir, csim_available, needs_csim


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


def _device_run(cfg, d, backend, data):
    with hostpy.open(d, backend=backend) as acc:
        return train_run(cfg, DeviceEngine(cfg, acc), data, log=lambda *_: None)


@needs_csim
@pytest.mark.parametrize("model,preset,n,m,limit", [("mlp", "sat_2x8", 2, 8, 320), ("cnn", "sat_2x4", 2, 4, 160)])
def test_bdwp_on_csim_is_bit_identical_to_numpy_and_learns(tmp_path_factory, data, model, preset, n, m, limit):
    d = arch_dir(tmp_path_factory, preset)
    cfg = RunConfig(model=model, method="bdwp", n=n, m=m, epochs=2, train_limit=limit, seed=3)
    sim = _device_run(cfg, d, "csim", data)
    ref = _device_run(cfg, d, "numpy", data)
    assert sim["backend"] == "csim" and ref["backend"] == "numpy"
    assert sim["kernel_calls"] == ref["kernel_calls"] > 0
    assert sim["history"] == ref["history"]
    for a, b in zip(sim["final_weights"], ref["final_weights"]):
        assert np.array_equal(a, b)
    assert sim["test_accuracy"] > 0.5           # chance is 0.1 on 10 digits


def test_srste_device_run_learns_on_numpy_backend(tmp_path_factory, data):
    cfg = RunConfig(model="mlp", method="srste", n=2, m=8, epochs=2, train_limit=320)
    rec = _device_run(cfg, arch_dir(tmp_path_factory, "sat_2x8"), "numpy", data)
    assert rec["test_accuracy"] > 0.5 and rec["nm"] == "2:8"


def test_device_engine_rejects_a_run_of_another_nm(tmp_path_factory):
    with hostpy.open(arch_dir(tmp_path_factory, "sat_2x8")) as acc:
        with pytest.raises(ValueError, match="2:4 but sat_2x8 groups by M=8"):
            DeviceEngine(RunConfig(method="bdwp", n=2, m=4), acc)


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_float_gradients_match_finite_differences(model, data):
    cfg = RunConfig(model=model, method="dense", seed=1)
    net, eng = Model(cfg), FloatEngine(cfg)
    x, y = data[0][:6], data[1][:6]

    def loss():
        eng.begin_step(net.layers)
        return _softmax_xent(net.forward(eng, x)[0], y)[0]

    eng.begin_step(net.layers)
    logits, cache = net.forward(eng, x)
    grads = net.backward(eng, _softmax_xent(logits, y)[1], cache)
    rng = np.random.default_rng(0)
    for layer, dw, db in grads:
        for _ in range(3):
            i, j = rng.integers(layer.w.shape[0]), rng.integers(layer.w.shape[1])
            old, eps = layer.w[i, j], 1e-6
            layer.w[i, j] = old + eps
            up = loss()
            layer.w[i, j] = old - eps
            down = loss()
            layer.w[i, j] = old
            assert (up - down) / (2 * eps) == pytest.approx(dw[i, j], rel=1e-4, abs=1e-8), layer.name


def test_float_bdwp_backward_uses_the_separately_pruned_copy():
    cfg = RunConfig(model="mlp", method="bdwp", n=2, m=8)
    net, eng = Model(cfg), FloatEngine(cfg)
    eng.begin_step(net.layers)
    layer = net.layers[1]                                     # fc2: sparse in both directions
    dy = np.random.default_rng(2).standard_normal((layer.w.shape[0], 3))
    assert np.allclose(eng.bp(layer, dy), (layer.w * nm_mask(layer.w, 2, 8, axis=0)).T @ dy)
    assert not np.allclose(eng.bp(layer, dy), (layer.w * nm_mask(layer.w, 2, 8, axis=1)).T @ dy)


def test_train_command_writes_report_and_plot(tmp_path_factory, tmp_path, monkeypatch):
    tiny = {"mlp": {"epochs": 1, "train_limit": 64}, "cnn": {"epochs": 1, "train_limit": 32}}
    monkeypatch.setattr(suite, "QUICK", tiny)
    src = arch_dir(tmp_path_factory, "sat_2x8")
    import shutil
    build = tmp_path / "build"
    shutil.copytree(src, build / "sat_2x8", ignore=shutil.ignore_patterns("work", "reports"))
    backend = "csim" if csim_available() else "numpy"
    rc = main(["train", "--arch", "sat_2x8", "--build", str(build), "--backend", backend, "--quick",
               "--models", "mlp,cnn", "--nm", "2:8,2:4"])
    assert rc == 0
    report = json.loads((build / "sat_2x8" / "reports" / "train.json").read_text())
    runs = report["runs"]
    assert {(r["model"], r["method"], r["nm"]) for r in runs} == {
        (mo, me, nm) for mo in ("mlp", "cnn") for me, nm in
        [("dense", None), ("srste", "2:8"), ("bdwp", "2:8"), ("srste", "2:4"), ("bdwp", "2:4")]}
    for r in runs:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["backend"] == ("float" if r["method"] == "dense" else backend)
    if backend == "csim":
        assert all(r["matches_numpy"] for r in runs if r["method"] != "dense")
    assert (build / "sat_2x4" / "regmap.json").is_file()       # the 2:4 sibling was generated
    assert (build / "sat_2x8" / "reports" / "train.png").stat().st_size > 1000


def test_train_command_bad_arch_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--arch", str(tmp_path / "missing") + "/", "--backend", "numpy"]) == 2
    assert "architecture directory not found" in capsys.readouterr().err


def test_train_command_unknown_model_is_a_clear_error(tmp_path_factory, capsys):
    d = str(arch_dir(tmp_path_factory, "sat_2x8"))
    assert main(["train", "--arch", d, "--backend", "numpy", "--models", "mlp,resnet"]) == 2
    assert "unknown model(s) resnet" in capsys.readouterr().err


@needs_csim
def test_structure_decay_frames_on_csim_are_bit_identical_to_numpy(tmp_path_factory, data):
    """sdgf-sparsify 1:8 on sat_2x8 (runtime_n 1..7): the 4:8, 2:8 and 1:8 frames each run SPARSE at
    their own n on the C-simulated kernel, bit for bit as on the numpy backend."""
    d = arch_dir(tmp_path_factory, "sat_2x8")
    cfg = RunConfig(model="mlp", method="bdwp", n=1, m=8, recipe="sdgf-sparsify", epochs=3, train_limit=96, seed=3)
    sim = _device_run(cfg, d, "csim", data)
    ref = _device_run(cfg, d, "numpy", data)
    assert sim["device_passes"] == ref["device_passes"]
    assert [sim["device_passes"][f"fc2 FF SPARSE@{n}"] for n in (4, 2, 1)] == [3, 3, 3]
    assert sim["history"] == ref["history"]
    for a, b in zip(sim["final_weights"], ref["final_weights"]):
        assert np.array_equal(a, b)
