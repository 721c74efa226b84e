"""Training recipes (hostpy.bdwp: SR-STE, PGF mask decay and structure decay), layer-wise N:M
plans and the runtime-N cost rule (hostpy.plan), and their use in hostpy.train on the float engine
and on the numpy backend.

The expected PGF schedules are written out by hand from the definitions in PGF's public code
(timm/sparse_pruning/sparse_functions.py of abhibambhaniya/progressive_gradient_flow_nm_sparsity:
get_decay_config, LinearDecay, ExponentialDecay), not computed by the code under test.
"""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

import hostpy
from hostpy import bdwp
from hostpy import plan as P
from hostpy.__main__ import main
from hostpy.bdwp import Phase, Recipe, pattern_mask, structure_schedule
from hostpy.nm import nm_mask
from hostpy.train import (DeviceEngine, FloatEngine, Model, RunConfig, layer_shapes,
                          load_digits_split, train_run)

from test_hostpy_helpers import arch_dir


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


# ---- PGF structure decay: the schedules of its get_decay_config ---------------------------------
@pytest.mark.parametrize("kind,n,m,epochs,dense,fine,expected", [
    # sparsify: log2(M/N)+1 frames (M-1):M, M/2:M, ...; frame i at dense + int(i * size)
    ("sparsify", 1, 16, 15, 0, 3, {0: (15, 16), 2: (8, 16), 4: (4, 16), 7: (2, 16), 9: (1, 16)}),
    ("sparsify", 2, 8, 10, 1, 0, {1: (7, 8), 4: (4, 8), 7: (2, 8)}),
    # densify: 4 frames N:8M .. N:M;  fine: 8N:8M .. N:M
    ("densify", 1, 8, 8, 0, 0, {0: (1, 64), 2: (1, 32), 4: (1, 16), 6: (1, 8)}),
    ("fine", 1, 8, 10, 2, 0, {2: (8, 64), 4: (4, 32), 6: (2, 16), 8: (1, 8)}),
    # fewer epochs than frames: a later frame at the same start epoch replaces the earlier one
    ("sparsify", 1, 8, 3, 0, 0, {0: (4, 8), 1: (2, 8), 2: (1, 8)}),
])
def test_structure_schedules_follow_pgf_definitions(kind, n, m, epochs, dense, fine, expected):
    assert structure_schedule(kind, n, m, epochs, dense, fine) == expected


def test_custom_schedule_and_frame_lookup():
    r = Recipe("sdgf-custom", epochs=6, custom=((4, 8), (2, 8), (1, 8)))
    assert r.schedule(1, 8) == {0: (4, 8), 2: (2, 8), 4: (1, 8)}
    assert [r.phase(1, 8, e).label for e in range(6)] == ["4:8", "4:8", "2:8", "2:8", "1:8", "1:8"]
    with pytest.raises(ValueError, match="sdgf-custom needs"):
        Recipe("sdgf-custom", epochs=6)
    with pytest.raises(ValueError, match="unknown recipe"):
        Recipe("sdgf-geometric")


def test_dense_epochs_and_fine_tune_of_a_recipe():
    r = Recipe("sdgf-sparsify", epochs=10, dense_epochs=2, fine_epochs=2)
    assert r.phase(1, 16, 0).dense and r.phase(1, 16, 1).dense          # dense warm-up
    assert r.phase(1, 16, 2) == Phase(15, 16)
    assert r.phase(1, 16, 9) == Phase(1, 16)                            # fine-tune keeps the target
    assert r.phase(None, None, 5).dense                                 # a dense layer of the plan


# ---- PGF mask decay ---------------------------------------------------------------------------
def test_mask_decay_factors_linear_and_exponential():
    lin = Recipe("mdgf-linear", epochs=4, steps_per_epoch=10, decay_coef=0.04, dense_epochs=1, fine_epochs=1)
    ex = Recipe("mdgf-exp", epochs=4, steps_per_epoch=10, decay_coef=0.04, dense_epochs=1, fine_epochs=1)
    assert lin.phase(1, 8, 0, 5).dense                                  # dense epoch
    # t counts steps from the end of the dense epochs: epoch 1 step 5 -> t = 5; epoch 2 step 5 -> 15
    assert lin.decay(1, 5) == pytest.approx(1 - 0.04 * 5)
    assert lin.decay(2, 5) == pytest.approx(1 - 0.04 * 15)
    assert ex.decay(2, 5) == pytest.approx(math.exp(-0.04 * 15))
    assert lin.decay(3, 0) == 0.0 and ex.decay(3, 0) == 0.0             # fine-tune: binary masks
    fast = Recipe("mdgf-linear", epochs=3, steps_per_epoch=10, decay_coef=0.2)
    assert fast.decay(0, 4) == pytest.approx(0.2) and fast.decay(0, 7) == 0.0   # clamps at 0
    assert fast.frames(2, 8) == [(0, "2:8 decaying"), (1, "2:8")]
    # default c: DECAY_AT_END over the sparse steps (linear reaches 0 a quarter of the way in)
    d = Recipe("mdgf-linear", epochs=8, steps_per_epoch=10)
    assert d.coef == pytest.approx(bdwp.DECAY_AT_END / 80) and d.decay(2, 0) == 0.0 and d.decay(1, 9) > 0


def test_mask_decay_scales_pruned_weights_in_ff_and_bp_and_grad_passes_through(data):
    cfg = RunConfig(model="mlp", method="bdwp", n=2, m=8, recipe="mdgf-linear")
    net, eng = Model(cfg), FloatEngine(cfg)
    layer = net.layers[1]
    eng.begin_step(net.layers, {l.name: Phase(2, 8, 0.25) if l.target else Phase(None, None) for l in net.layers})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((layer.w.shape[1], 3))
    dy = rng.standard_normal((layer.w.shape[0], 3))
    mff, mbp = nm_mask(layer.w, 2, 8, axis=1), nm_mask(layer.w, 2, 8, axis=0)
    assert np.allclose(eng.ff(layer, x), (layer.w * (mff + (1 - mff) * 0.25)) @ x)
    assert np.allclose(eng.bp(layer, dy), (layer.w * (mbp + (1 - mbp) * 0.25)).T @ dy)
    assert np.allclose(eng.wu(layer, dy, x), dy @ x.T)                   # straight through: dense dW
    assert not bdwp.srste_decay(layer.w, eng.masks[layer.name], cfg.lam_value).any()   # PGF: lambda 0
    assert RunConfig(recipe="srste").lam_value == bdwp.DEFAULT_LAMBDA


# ---- masks at the patterns the schedules visit ---------------------------------------------------
def test_ff_only_backward_uses_the_ff_masked_weight_as_srste_autograd_does(tmp_path_factory):
    """SR-STE's and PGF's code run F.linear on the masked W, so dX = (W*mask)^T dY; only dW is
    straight-through. Float engine and device engine (numpy backend) alike."""
    cfg = RunConfig(model="mlp", method="srste", n=2, m=8)
    net, eng = Model(cfg), FloatEngine(cfg)
    eng.begin_step(net.layers)
    layer = net.layers[1]
    dy = np.random.default_rng(4).standard_normal((layer.w.shape[0], 3))
    assert np.allclose(eng.bp(layer, dy), (layer.w * nm_mask(layer.w, 2, 8, axis=1)).T @ dy)
    with hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="numpy") as acc:
        dev = DeviceEngine(cfg, acc)
        dev.begin_step(net.layers)
        q = hostpy.quantize(layer.w, 8)
        qd = hostpy.quantize(dy, 8)
        want = ((q.q * nm_mask(q.q, 2, 8, axis=1)).astype(np.int64).T @ qd.q) * q.scale * qd.scale
        assert np.allclose(dev.bp(layer, dy), want)


def test_pattern_mask_matches_golden_and_extends_to_wide_groups():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 96))
    assert np.array_equal(pattern_mask(w, 2, 8), nm_mask(w, 2, 8))
    assert np.array_equal(pattern_mask(w, 3, 16, axis=0), nm_mask(w, 3, 16, axis=0))
    assert pattern_mask(w, 16, 16).all()
    m = pattern_mask(w, 2, 64)                      # 96 = one group of 64 + a zero-padded one of 32
    assert m.sum(axis=1).tolist() == [4] * 16
    for lo, hi in ((0, 64), (64, 96)):
        g = np.abs(w[:, lo:hi])
        top = np.sort(np.argsort(-g, axis=1, kind="stable")[:, :2], axis=1)
        assert np.array_equal(np.nonzero(m[:, lo:hi])[1].reshape(16, 2), top)
    tie = np.zeros((1, 32))
    tie[0, [3, 9, 20]] = 1.0
    assert np.nonzero(pattern_mask(tie, 2, 32))[1].tolist() == [3, 9]     # ties: lower index wins


# ---- layer-wise plans -------------------------------------------------------------------------
def test_plan_rules_and_explicit_entries():
    mlp, cnn = layer_shapes("mlp"), layer_shapes("cnn")
    assert P.resolve_plan(None, mlp, 1, 8) == {"fc1": (1, 8), "fc2": (1, 8), "fc3": None}
    assert P.resolve_plan("ends-dense", mlp, 1, 8) == {"fc1": None, "fc2": (1, 8), "fc3": None}
    # conv1's K = 9 is not a multiple of M: dense under every rule
    assert P.resolve_plan("all", cnn, 2, 8) == {"conv1": None, "conv2": (2, 8), "fc1": (2, 8), "fc2": None}
    assert P.resolve_plan("ends-dense,fc1=4:8,conv2=dense", cnn, 1, 8) == \
        {"conv1": None, "conv2": None, "fc1": (4, 8), "fc2": None}
    with pytest.raises(ValueError, match="unknown layer"):
        P.resolve_plan("fc9=1:8", mlp, 1, 8)
    with pytest.raises(ValueError, match="not multiples of 8"):
        P.resolve_plan("fc3=1:8", mlp, 1, 8)
    with pytest.raises(ValueError, match="unknown plan rule"):
        RunConfig(plan="first-dense")
    net = Model(RunConfig(model="mlp", method="bdwp", n=1, m=8, plan="ends-dense"))
    assert [l.target for l in net.layers] == [None, (1, 8), None]


def test_pass_modes_follow_runtime_n_and_the_phase():
    rt = (2,)
    sp = P.pass_modes(Phase(2, 8), "bdwp", True, 8, rt)
    assert sp["FF"][:2] == ("SPARSE", 2) and sp["BP"][:2] == ("SPARSE", 2) and sp["PRUNE"][0] == "KERNEL"
    assert sp["WU"][0] == "DENSE"
    off = P.pass_modes(Phase(1, 8), "bdwp", True, 8, rt)
    assert off["FF"] == ("DENSE", None, "n=1 not in runtime_n [2]") and off["PRUNE"][0] == "HOST"
    dec = P.pass_modes(Phase(2, 8, 0.3), "bdwp", True, 8, rt)
    assert dec["FF"][0] == "DENSE" and "mask decay" in dec["FF"][2] and dec["PRUNE"][0] == "KERNEL"
    wide = P.pass_modes(Phase(1, 64), "bdwp", True, 8, P.full_runtime_n(8))
    assert wide["FF"][0] == "DENSE" and "M=8" in wide["FF"][2]
    ff_only = P.pass_modes(Phase(2, 8), "srste", True, 8, rt)
    assert ff_only["FF"][0] == "SPARSE" and ff_only["BP"] == ("DENSE", None, "FF-only: W masked along Cin")
    assert "BP" not in P.pass_modes(Phase(2, 8), "bdwp", False, 8, rt)      # first layer: no dX
    assert P.pass_modes(Phase(8, 8), "bdwp", True, 8, rt)["FF"][2] == "dense phase"


# ---- the runtime-N cost rule and the ledger ----------------------------------------------------
def test_runtime_n_cost_rule_takes_ceil_n_over_n_hw_beats_per_group():
    from gen.perf import gemm_cost
    from gen.spec import PRESETS
    from hostpy.abi import Abi
    s = PRESETS["sat_2x8"]
    base = gemm_cost(s, "SPARSE", 128, 256, 32)
    for n, spg in ((1, 1), (2, 1), (3, 2), (4, 2), (7, 4)):
        at_n = gemm_cost(s, "SPARSE", 128, 256, 32, n=n)
        # The core takes ceil(n / n_hw) beats per group and A carries as many records per group.
        assert at_n.beats == spg * base.beats
        assert at_n.mults == base.mults * n // s.n
        def a_bytes(n):   # A's ABI v2 regions at n (records of n_hw slots, packed per word)
            return sum(v for a, v in Abi(s).call_bytes("SPARSE", 128, 256, 32, n).items() if a in ("a_val", "a_idx"))
        assert a_bytes(n) >= spg * a_bytes(s.n) * 0.9
        assert at_n.bytes_in - base.bytes_in == (a_bytes(n) - a_bytes(s.n)) * (32 // s.cols)   # A once per column tile
        assert P.runtime_n_gemm_cycles(s, n, 128, 256, 32) == at_n.cycles >= spg * base.core_busy
    with pytest.raises(ValueError):
        P.runtime_n_gemm_cycles(s, 8, 128, 256, 32)                     # n = M is DENSE mode
    s16 = PRESETS["sat_1x16"]
    assert gemm_cost(s16, "SPARSE", 64, 256, 32, n=8).beats == 8 * gemm_cost(s16, "SPARSE", 64, 256, 32).beats


def test_ledger_prices_modes_and_dense_reference():
    from gen.perf import gemm_cost, prune_cost
    from gen.spec import PRESETS
    s = PRESETS["sat_2x8"]
    shapes = layer_shapes("mlp")
    led = P.StepLedger(s, (2,), shapes, "bdwp", 32)
    phases = {"fc1": Phase(2, 8), "fc2": Phase(1, 8), "fc3": Phase(None, None)}
    led.record(phases)
    rep = led.report()
    fc1 = rep["layers"][0]
    expect = (gemm_cost(s, "SPARSE", 256, 64, 32).cycles + gemm_cost(s, "DENSE", 256, 32, 64).cycles +
              prune_cost(s, 256, 64).cycles)                            # FF sparse, WU dense, no BP, PRUNE
    assert fc1["cycles"] == expect
    assert fc1["dense_cycles"] == gemm_cost(s, "DENSE", 256, 64, 32).cycles + gemm_cost(s, "DENSE", 256, 32, 64).cycles
    fc2 = rep["layers"][1]                                              # n=1 not in runtime_n: all dense
    assert fc2["cycles"] == fc2["dense_cycles"] and fc2["steps"]["FF DENSE (n=1 not in runtime_n [2])"] == 1
    assert rep["speedup"] == pytest.approx(rep["dense_cycles"] / rep["cycles"], rel=1e-3) and rep["speedup"] > 1


# ---- training with recipes ----------------------------------------------------------------------
def test_float_sdgf_run_visits_the_frames_and_learns(data):
    from gen.spec import PRESETS, make_spec, spec_to_dict
    cfg = RunConfig(model="mlp", method="bdwp", n=1, m=16, recipe="sdgf-sparsify", epochs=5, train_limit=320)
    # 1:16 hardware whose B record (C x M int8) is one AXI word, so the modelled kernel is compute-bound
    # (sat_1x16's 8-column B record is two words: streamed B binds its SPARSE frames, docs/PERF.md)
    hw = make_spec(**{**spec_to_dict(PRESETS["sat_1x16"]), "name": "t_1x16_c4", "cols": 4})
    rec = train_run(cfg, FloatEngine(cfg), data, log=lambda *_: None, hw=(hw, (1,)))
    assert [h["phase"] for h in rec["history"]] == ["15:16", "8:16", "4:16", "2:16", "1:16"]
    assert rec["frames"]["fc1"] == [(0, "15:16"), (1, "8:16"), (2, "4:16"), (3, "2:16"), (4, "1:16")]
    assert rec["test_accuracy"] > 0.5 and rec["lam"] == 0.0
    k, rt = rec["modelled"]["kernel"], rec["modelled"]["runtime_n"]
    # today only the 1:16 frame is SPARSE; with runtime N every frame is, so it is faster
    assert k["layers"][0]["steps"]["FF SPARSE@1"] == 10 and rt["speedup"] > k["speedup"] > 1
    assert 0.5 < rec["flops_fraction"] < 1


def test_device_run_at_a_runtime_n_runs_every_frame_at_its_own_n(tmp_path_factory, data):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    cfg = RunConfig(model="mlp", method="bdwp", n=1, m=8, recipe="sdgf-sparsify", epochs=3, train_limit=96)
    with hostpy.open(d, backend="numpy") as acc:
        eng = DeviceEngine(cfg, acc)
        assert eng.runtime_n == tuple(range(1, 8))                      # the kernel's N is a register
        rec = train_run(cfg, eng, data, log=lambda *_: None)
    assert [h["phase"] for h in rec["history"]] == ["4:8", "2:8", "1:8"]
    assert rec["device_passes"] == {f"{layer} {p} SPARSE@{n}": 3 for n in (4, 2, 1)
                                    for layer, p in (("fc1", "FF"), ("fc2", "FF"), ("fc2", "BP"))} | \
        {"fc3 BP DENSE": 9, "fc3 FF DENSE": 9}
    led = rec["modelled"]["kernel"]["layers"][1]["steps"]
    assert led["FF SPARSE@4"] == led["FF SPARSE@2"] == led["FF SPARSE@1"] == 3
    assert np.isfinite(rec["history"][-1]["loss"])


def test_device_run_on_a_kernel_listing_fewer_n_reports_dense_frames(tmp_path_factory, data):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    cfg = RunConfig(model="mlp", method="bdwp", n=1, m=8, recipe="sdgf-sparsify", epochs=3, train_limit=96)
    with hostpy.open(d, backend="numpy") as acc:
        acc.arch.regmap["nm"]["runtime_n"] = [2]                        # a kernel whose N is fixed
        eng = DeviceEngine(cfg, acc)
        assert eng.runtime_n == (2,)
        rec = train_run(cfg, eng, data, log=lambda *_: None)
    assert rec["device_passes"] == {"fc1 FF DENSE": 6, "fc1 FF SPARSE@2": 3, "fc2 BP DENSE": 6,
                                    "fc2 BP SPARSE@2": 3, "fc2 FF DENSE": 6, "fc2 FF SPARSE@2": 3,
                                    "fc3 BP DENSE": 9, "fc3 FF DENSE": 9}
    led = rec["modelled"]["kernel"]["layers"][1]["steps"]
    assert led["FF SPARSE@2"] == 3 and led["FF DENSE (n=4 not in runtime_n [2])"] == 3


def test_device_mask_decay_runs_dense_until_the_mask_is_hard(tmp_path_factory, data):
    d = arch_dir(tmp_path_factory, "sat_2x8")
    cfg = RunConfig(model="mlp", method="srste", n=2, m=8, recipe="mdgf-linear", epochs=2, train_limit=160,
                    decay_coef=0.25)                                     # d: 1, .75, .5, .25, then 0
    with hostpy.open(d, backend="numpy") as acc:
        rec = train_run(cfg, DeviceEngine(cfg, acc), data, log=lambda *_: None)
    assert rec["device_passes"]["fc1 FF DENSE"] == 4 and rec["device_passes"]["fc1 FF SPARSE@2"] == 6
    assert rec["test_accuracy"] > 0.3


def test_runtime_n_grows_only_with_a_host_api_for_it(tmp_path_factory):
    with hostpy.open(arch_dir(tmp_path_factory, "sat_2x8"), backend="numpy") as acc:
        acc.arch.regmap["nm"]["runtime_n"] = [1, 2]          # a future kernel listing more n
        eng = DeviceEngine(RunConfig(method="bdwp", n=1, m=8), acc)
        assert eng.runtime_n == (1, 2)
        # the host API runs a listed n end to end (numpy backend: ABI v2 records of n_hw slots, golden inside)
        rng = np.random.default_rng(0)
        w, x = rng.integers(-128, 128, (16, 24)), rng.integers(-128, 128, (24, 5))
        pw = acc.prune(w, n=1)
        assert pw.ff.n == 1 and np.array_equal(hostpy.nm.decompress(pw.ff), hostpy.nm.decompress(hostpy.nm.compress(w, 1, 8)))
        assert np.array_equal(acc.ff(pw, x), hostpy.nm.decompress(pw.ff).astype(np.int64) @ x)
        with pytest.raises(hostpy.errors.NotNMError, match="keeps n in"):
            acc.prune(w, n=3)
        with pytest.raises(ValueError, match="groups by M=8"):
            DeviceEngine(RunConfig(method="bdwp", n=2, m=4), acc)


def test_train_command_with_recipes_on_the_float_engine(tmp_path_factory, tmp_path, monkeypatch):
    from hostpy import suite
    monkeypatch.setattr(suite, "QUICK", {"mlp": {"epochs": 2, "train_limit": 64}, "cnn": {"epochs": 1, "train_limit": 32}})
    build = tmp_path / "build"
    shutil.copytree(arch_dir(tmp_path_factory, "sat_1x16"), build / "sat_1x16", ignore=shutil.ignore_patterns("work"))
    rc = main(["train", "--arch", "sat_1x16", "--build", str(build), "--engine", "float", "--quick", "--no-plot",
               "--models", "mlp", "--nm", "1:16", "--recipe", "srste,sdgf-custom,mdgf-exp", "--methods", "bdwp",
               "--frames", "4:16,1:16", "--plan", "ends-dense"])
    assert rc == 0
    runs = json.loads((build / "sat_1x16" / "reports" / "train_float.json").read_text())["runs"]
    assert [(r["method"], r["recipe"]) for r in runs] == [("dense", None), ("bdwp", "srste"),
                                                           ("bdwp", "sdgf-custom"), ("bdwp", "mdgf-exp")]
    assert all(r["plan"] == {"fc1": "dense", "fc2": "1:16", "fc3": "dense"} for r in runs[1:])
    assert [h["phase"] for h in runs[2]["history"]] == ["4:16", "1:16"]
    assert runs[1]["modelled"]["kernel"]["arch"] == "sat_1x16"


def test_train_command_bad_recipe_is_a_clear_error(tmp_path_factory, capsys):
    d = str(arch_dir(tmp_path_factory, "sat_2x8"))
    assert main(["train", "--arch", d, "--backend", "numpy", "--recipe", "pgf"]) == 2
    assert "unknown recipe 'pgf'" in capsys.readouterr().err


def test_network_plan_cost_hook_reproduces_perf_and_prices_runtime_n():
    """The bench hook: the default plan at the spec's n is gen.perf.step_cost's BDWP step exactly;
    with a runtime-N kernel a milder n costs ceil(n/n_hw) of the sparse GEMMs."""
    from gen.perf import step_cost
    from gen.spec import PRESETS
    for name in ("sat_2x8", "sat_1x16"):
        s = PRESETS[name]
        rep = P.network_plan_cost(s, "resnet18_cifar")
        assert rep["cycles"] == step_cost(s, "resnet18_cifar", bdwp=True).cycles
        assert rep["dense_cycles"] == step_cost(s, "resnet18_cifar", bdwp=False).cycles
        assert rep["runtime_n"] == list(range(1, s.m)) == list(P.full_runtime_n(s.m))
    s = PRESETS["sat_2x8"]
    fixed = P.network_plan_cost(s, "deit_s", n=4, runtime_n=[2])        # 4 not in runtime_n: all dense
    today = fixed
    assert today["speedup"] == pytest.approx(1.0, abs=1e-3) and "not in runtime_n" in today["layers"][0]["reason"]
    rt = {n: P.network_plan_cost(s, "deit_s", n=n, runtime_n=P.full_runtime_n(8))["speedup"] for n in (1, 2, 4)}
    assert rt[1] == rt[2] > rt[4] > 1
    ends = P.network_plan_cost(s, "deit_s", plan="ends-dense")
    assert ends["layers"][0]["n"] == "dense" and ends["speedup"] < P.network_plan_cost(s, "deit_s")["speedup"]


def test_plan_runs_dense_where_sparse_costs_more_by_the_model():
    """sat_2x8 (2:8 hardware) at runtime n = 7: ceil(7/2) = 4 = M/n_hw records per group, so a SPARSE GEMM
    takes DENSE's cycles and PRUNE and the indices come on top: the plan runs DENSE (mask from the
    host), saying why; at n = 2 and n = 5 SPARSE stays cheaper on the same layer. Decided by gen.perf's
    modelled cycles, which the assertions recompute."""
    from gen.perf import gemm_cost, prune_cost
    from gen.spec import PRESETS
    s = PRESETS["sat_2x8"]
    layer = P.LayerShape("conv", k=576, cout=64, spatial=64)
    batch = 8
    gem = layer.gemms(batch)
    full = P.full_runtime_n(s.m)
    for n, want in ((2, "SPARSE"), (5, "SPARSE"), (7, "DENSE")):
        modes = P.pass_modes(Phase(n, 8), "bdwp", True, 8, full, spec=s, layer=layer, batch=batch)
        sparse = (sum(gemm_cost(s, "SPARSE", *gem[p], n=n).cycles for p in ("FF", "BP"))
                  + prune_cost(s, layer.cout, layer.k, n=n).cycles)
        dense = sum(gemm_cost(s, "DENSE", *gem[p]).cycles for p in ("FF", "BP"))
        assert (sparse < dense) == (want == "SPARSE"), (n, sparse, dense)
        assert modes["FF"][0] == modes["BP"][0] == want and modes["WU"][0] == "DENSE"
        if want == "DENSE":
            why = modes["FF"][2]
            assert modes["PRUNE"] == ("HOST", None, why)
            assert "4 records per group >= M/n_hw = 4" in why and f"{sparse} >= DENSE {dense}" in why
        else:
            assert modes["FF"] == ("SPARSE", n, "") and modes["PRUNE"] == ("KERNEL", n, "")
    # Without the hardware the phase alone decides (a board without gen.perf).
    assert P.pass_modes(Phase(7, 8), "bdwp", True, 8, full)["FF"] == ("SPARSE", 7, "")
    # The ledger and the bench hook follow the same choice: at n = 7 the step costs what dense training costs.
    led = P.StepLedger(s, full, [layer], "bdwp", batch)
    led.record({"conv": Phase(7, 8)})
    rep = led.report()
    assert rep["cycles"] == rep["dense_cycles"] and all("DENSE" in k for k in rep["layers"][0]["steps"])
    net = P.network_plan_cost(s, "resnet18_cifar", n=7, runtime_n=full)
    assert net["cycles"] == net["dense_cycles"]
    assert all(r["modes"].get("FF", "DENSE") == "DENSE" for r in net["layers"])
    assert any("records per group >= M/n_hw" in r["reason"] for r in net["layers"])
    assert P.network_plan_cost(s, "resnet18_cifar", n=5, runtime_n=full)["speedup"] > 1
