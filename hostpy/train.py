"""BDWP / SR-STE / dense training of an MLP and a small CNN on scikit-learn's digits, end to end.

Where the GEMMs run is the *engine*:

* ``FloatEngine`` (backend ``"float"``): float64 NumPy on the host, masks from hostpy.bdwp — the
  algorithmic reference (the dense baseline is trained this way).
* ``DeviceEngine`` (backends ``numpy``/``csim``/``pynq``/``xrt``): every GEMM of a step goes through
  an :class:`hostpy.Accelerator`. Once per iteration (pre-generation) each layer's float master W
  is quantized and PRUNEd on the kernel into its FF and BP copies; FF and BP run as SPARSE GEMMs
  where the method and layer policy say so (DENSE GEMMs otherwise), WU always DENSE. Operands are
  quantized per tensor to ``data_bits`` (round half to even), results dequantized by sa*sb.

The float master weights, biases, ReLU, softmax cross-entropy, SR-STE decay and SGD with momentum
stay on the host. SR-STE's decay term uses the masks the kernel's PRUNE produced (decay_mask
"ff" by default, see hostpy.bdwp). FF-only runs ("srste") compute dX with the FF-masked W, as
SR-STE's and PGF's autograd code does: a DENSE GEMM on the kernel (the mask is not N:M along Cout). Everything is deterministic, so the numpy and csim backends
train to bit-identical weights (tests/test_hostpy_train.py checks it).

Layer sparsity policy (PAPER.md pitfall 4): a layer is sparse when its grouped axes are multiples
of M, except the final classifier, which stays dense as in the SR-STE recipes; the CNN's first
conv (Cin*kh*kw = 9) is therefore dense. The first layer of each model needs no dX, so its BP GEMM
is skipped. ``RunConfig.plan`` chooses another layer-wise plan (hostpy.plan: ``ends-dense``,
``all``, explicit ``layer=N:M`` entries).

Recipes (``RunConfig.recipe``, hostpy.bdwp): ``srste`` (hard N:M mask + SR-STE decay, as before)
and Progressive Gradient Flow's mask decay (``mdgf-linear``/``mdgf-exp``) and structure decay
(``sdgf-sparsify``/``-densify``/``-fine``/``-custom``). Each step every layer gets a
:class:`hostpy.bdwp.Phase` (its n:m now, and the mask-decay factor). On a device a pass runs SPARSE
at the phase's n only when n is in the kernel's ``nm.runtime_n`` and the effective weights are N:M;
otherwise DENSE on the kernel with the effective weights (hostpy.plan.pass_modes), and the run
record says which, per layer. Test accuracy is always measured with the target N:M hard masks (the
model an N:M inference engine would run). Each run also prices its steps with the performance
model (``modelled``: on the kernel's runtime_n, and with a runtime-N kernel).
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from . import bdwp
from . import plan as planmod
from .accel import Accelerator
from .layout import col2im, cols_to_nchw, conv_out_size, im2col, nchw_to_cols
from .nm import NMCompressed
from .quant import dequantize, quantize

__all__ = ["RunConfig", "load_digits_split", "train_run", "FloatEngine", "DeviceEngine", "kept_mask", "MODELS",
           "layer_shapes"]

MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class RunConfig:
    model: str = "mlp"              # "mlp" | "cnn"
    method: str = "bdwp"            # "dense" | "srste" | "bdwp"
    n: int = 2
    m: int = 8
    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.05                # peak learning rate of the per-epoch cosine schedule
    momentum: float = 0.9
    lam: float | None = None        # SR-STE lambda; None: the recipe's default (2e-4 srste, 0 PGF)
    decay_mask: str = "ff"
    seed: int = 0
    train_limit: int | None = None  # use only the first N training samples (quick runs)
    recipe: str = "srste"           # hostpy.bdwp.RECIPES
    plan: str | None = None         # layer-wise N:M plan (hostpy.plan); None: classifier-dense
    dense_frac: float = 0.0         # PGF --dense-steps: fraction of the epochs trained dense first
    fine_frac: float = 0.0          # PGF --fine-tune-steps: fraction of the epochs with binary masks at the end
    decay_coef: float | None = None  # PGF --decay-coef (per step); None: bdwp.DECAY_AT_END / sparse steps
    frames: tuple = ()              # sdgf-custom frames ((n, m), ...)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {MODELS}")
        if self.method not in bdwp.METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {bdwp.METHODS}")
        if self.decay_mask not in bdwp.DECAY_MASKS:
            raise ValueError(f"unknown decay_mask {self.decay_mask!r}; choose from {bdwp.DECAY_MASKS}")
        if self.recipe not in bdwp.RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose from {', '.join(bdwp.RECIPES)}")
        if not (0.0 <= self.dense_frac < 1.0 and 0.0 <= self.fine_frac < 1.0):
            raise ValueError("dense_frac and fine_frac must be in [0, 1)")
        planmod.parse_plan(self.plan)                       # syntax errors early

    @property
    def nm_label(self) -> str | None:
        return None if self.method == "dense" else f"{self.n}:{self.m}"

    @property
    def lam_value(self) -> float:
        return bdwp.recipe_lambda(self.recipe) if self.lam is None else float(self.lam)

    def make_recipe(self, steps_per_epoch: int) -> bdwp.Recipe:
        """PGF's epoch counts: int(fraction * epochs), as its train.py does."""
        return bdwp.Recipe(self.recipe, epochs=self.epochs, steps_per_epoch=steps_per_epoch,
                           dense_epochs=int(self.dense_frac * self.epochs),
                           fine_epochs=int(self.fine_frac * self.epochs),
                           decay_coef=self.decay_coef, custom=tuple(tuple(f) for f in self.frames))


# ---- data ------------------------------------------------------------------------------------
def load_digits_split(test_fraction: float = 0.2, seed: int = 0):
    """scikit-learn's digits (1797 8x8 images, shipped with the package): X in [0, 1], a fixed split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise RuntimeError("training needs scikit-learn for its bundled digits data set "
                           "(pip install scikit-learn)") from e
    d = load_digits()
    x = (d.data / 16.0).astype(np.float64)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    te, tr = order[:n_test], order[n_test:]
    return x[tr], y[tr], x[te], y[te]


# ---- layers -----------------------------------------------------------------------------------
@dataclass
class GemmLayer:
    """Weights of one GEMM layer W[Cout, K] (+ bias), its policy and optimizer state."""

    name: str
    w: np.ndarray
    b: np.ndarray
    target: tuple[int, int] | None   # the plan's N:M for this layer (None: dense)
    needs_dx: bool                   # False for the first layer
    spatial: int = 1                 # GEMM columns per sample (output pixels of a conv)
    vw: np.ndarray = field(init=False)
    vb: np.ndarray = field(init=False)

    def __post_init__(self):
        self.vw = np.zeros_like(self.w)
        self.vb = np.zeros_like(self.b)

    @property
    def sparse(self) -> bool:
        return self.target is not None

    @property
    def shape(self) -> planmod.LayerShape:
        return planmod.LayerShape(self.name, self.w.shape[1], self.w.shape[0], self.spatial, self.needs_dx)


def _init(rng, cout: int, k: int) -> np.ndarray:
    return rng.standard_normal((cout, k)) * math.sqrt(2.0 / k)      # He init for ReLU nets


_DIMS = {"mlp": [("fc1", 64, 256, 1), ("fc2", 256, 128, 1), ("fc3", 128, 10, 1)],
         "cnn": [("conv1", 9, 16, 64), ("conv2", 16 * 9, 32, 16), ("fc1", 32 * 4 * 4, 64, 1), ("fc2", 64, 10, 1)]}


def layer_shapes(model: str) -> list[planmod.LayerShape]:
    """The GEMM layers of a model (W[cout, k], outputs per sample), first layer without dX."""
    return [planmod.LayerShape(name, k, cout, sp, i > 0) for i, (name, k, cout, sp) in enumerate(_DIMS[model])]


def build_layers(cfg: RunConfig) -> list[GemmLayer]:
    rng = np.random.default_rng(cfg.seed)
    shapes = layer_shapes(cfg.model)
    targets = planmod.resolve_plan(cfg.plan, shapes, cfg.n, cfg.m) if cfg.method != "dense" else \
        {s.name: None for s in shapes}
    return [GemmLayer(s.name, _init(rng, s.cout, s.k), np.zeros(s.cout), target=targets[s.name],
                      needs_dx=s.needs_dx, spatial=s.spatial) for s in shapes]


# ---- engines -----------------------------------------------------------------------------------
def kept_mask(c: NMCompressed) -> np.ndarray:
    """Boolean dense mask of the slots a compressed operand keeps (its N:M mask)."""
    lanes, g, _ = c.indices.shape
    mask = np.zeros((lanes, g * c.m), dtype=bool)
    pos = np.arange(g)[None, :, None] * c.m + c.indices.astype(np.intp)
    np.put_along_axis(mask, pos.reshape(lanes, -1), True, axis=1)
    mask = mask[:, :c.k]
    return mask if c.axis == 1 else mask.T


def _final_phases(layers: list[GemmLayer]) -> dict[str, bdwp.Phase]:
    """Every layer at its plan target with hard masks: the deployed N:M model."""
    return {layer.name: bdwp.DENSE_PHASE if layer.target is None else bdwp.Phase(*layer.target) for layer in layers}


class FloatEngine:
    """float64 GEMMs on the host with hostpy.bdwp masks (the algorithmic reference)."""

    backend = "float"

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.masks: dict[str, bdwp.LayerMasks] = {}

    def begin_step(self, layers: list[GemmLayer], phases: dict[str, bdwp.Phase] | None = None) -> None:
        """Masks of this step; ``phases`` (layer -> Phase) default to the plan targets, hard."""
        phases = phases or _final_phases(layers)
        for layer in layers:
            ph = phases[layer.name]
            method = "dense" if ph.dense else self.cfg.method
            self.masks[layer.name] = bdwp.masks_for(layer.w, method, ph.n, ph.m, ph.decay)

    def ff(self, layer: GemmLayer, x: np.ndarray) -> np.ndarray:
        return bdwp.linear_forward(layer.w, x, self.masks[layer.name])

    def bp(self, layer: GemmLayer, dy: np.ndarray) -> np.ndarray:
        return self.masks[layer.name].effective(layer.w, "bp").T @ dy

    def wu(self, layer: GemmLayer, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        return dy @ x.T


class DeviceEngine:
    """Every GEMM through an Accelerator, with quantized operands (module docstring).

    Per layer and step the phase decides (hostpy.plan.pass_modes, on :attr:`runtime_n`):
    SPARSE passes use the kernel's PRUNE copies at the phase's n; DENSE passes multiply the
    effective weight on the kernel: W (dense phase), the hard-masked W (n outside runtime_n or a
    pattern grouped by another M; mask by the golden rule on the quantized W), or
    W * (mask + (1 - mask) * d) re-quantized (PGF mask decay). :attr:`used` counts what ran.
    """

    def __init__(self, cfg: RunConfig, acc: Accelerator):
        s = acc.spec
        if cfg.method != "dense" and not s.sparse:
            raise ValueError(f"{cfg.method} needs a sparse architecture, {s.name} is dense")
        if cfg.method != "dense" and cfg.m != s.m:
            raise ValueError(f"run is {cfg.n}:{cfg.m} but {s.name} groups by M={s.m} ({s.n}:{s.m})")
        self.cfg, self.acc, self.bits, self.spec = cfg, acc, s.data_bits, s
        self.backend = acc.backend
        # n values this kernel runs SPARSE (regmap.json nm.runtime_n, through hostpy.accel)
        self.runtime_n = acc.runtime_n
        self.state: dict[str, dict] = {}
        self.masks: dict[str, bdwp.LayerMasks] = {}
        self.used: Counter = Counter()

    def _prune(self, q: np.ndarray, n: int):
        return self.acc.prune(q, n=n)

    def begin_step(self, layers: list[GemmLayer], phases: dict[str, bdwp.Phase] | None = None) -> None:
        """Pre-generation: quantize each master W and PRUNE it on the kernel once per iteration."""
        phases = phases or _final_phases(layers)
        for layer in layers:
            ph = phases[layer.name]
            method = "dense" if ph.dense else self.cfg.method
            modes = planmod.pass_modes(ph, method, layer.needs_dx, self.spec.m, self.runtime_n, spec=self.spec,
                                       layer=layer.shape, batch=self.cfg.batch_size)
            qw = quantize(layer.w, self.bits, name=f"{layer.name}.W")
            st = {"modes": modes, "qw": qw, "method": method}
            if method == "dense":
                self.masks[layer.name] = bdwp.LayerMasks(None, None)
            else:
                if modes["PRUNE"][0] == "KERNEL":
                    pw = self._prune(qw.q, ph.n)
                    st["pw"] = pw
                    mff, mbp = kept_mask(pw.ff), kept_mask(pw.bp)
                else:
                    mff = bdwp.pattern_mask(qw.q, ph.n, ph.m, axis=1)
                    mbp = bdwp.pattern_mask(qw.q, ph.n, ph.m, axis=0) if method == "bdwp" else None
                # FF-only (srste): BP multiplies the FF-masked W, as a DENSE GEMM.
                mbp = mbp if method == "bdwp" else mff
                self.masks[layer.name] = bdwp.LayerMasks(mff, mbp, ph.decay)
                for p, which in (("FF", "ff"), ("BP", "bp")):
                    if p in modes and modes[p][0] == "DENSE":
                        mk = self.masks[layer.name]
                        if ph.decay > 0:
                            st[which] = quantize(mk.effective(layer.w, which), self.bits, name=f"{layer.name}.W{which}")
                        else:
                            st[which] = replace(qw, q=qw.q * (mff if which == "ff" else mbp))
            for p, (mode, n, _) in modes.items():
                if p in ("FF", "BP"):
                    self.used[(layer.name, p, mode, n)] += 1
            self.state[layer.name] = st

    def ff(self, layer: GemmLayer, x: np.ndarray) -> np.ndarray:
        st = self.state[layer.name]
        qx = quantize(x, self.bits, name=f"{layer.name}.X")
        if st["modes"]["FF"][0] == "SPARSE":
            return dequantize(self.acc.ff(st["pw"], qx.q), st["qw"].scale, qx.scale)
        w = st.get("ff", st["qw"])
        return dequantize(self.acc.gemm(w.q, qx.q), w.scale, qx.scale)

    def bp(self, layer: GemmLayer, dy: np.ndarray) -> np.ndarray:
        st = self.state[layer.name]
        qd = quantize(dy, self.bits, name=f"{layer.name}.dY")
        if st["modes"]["BP"][0] == "SPARSE":
            return dequantize(self.acc.bp(st["pw"], qd.q), st["qw"].scale, qd.scale)
        w = st.get("bp", st["qw"])
        return dequantize(self.acc.gemm(np.ascontiguousarray(w.q.T), qd.q), w.scale, qd.scale)

    def wu(self, layer: GemmLayer, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        qd = quantize(dy, self.bits, name=f"{layer.name}.dY")
        qx = quantize(x, self.bits, name=f"{layer.name}.X")
        return dequantize(self.acc.wu(qd.q, qx.q), qd.scale, qx.scale)


# ---- models: forward and backward over an engine ------------------------------------------------
def _relu(x):
    return np.maximum(x, 0.0)


class Model:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.layers = build_layers(cfg)

    def forward(self, eng, x: np.ndarray):
        """x: [B, 64] -> (logits [10, B], what backward needs)."""
        cache = []
        if self.cfg.model == "mlp":
            h = x.T
            for i, layer in enumerate(self.layers):
                z = eng.ff(layer, h) + layer.b[:, None]
                cache.append((layer, h, z))
                h = z if i == len(self.layers) - 1 else _relu(z)
            return h, cache
        bsz = x.shape[0]
        img = x.reshape(bsz, 1, 8, 8)
        geo = [(1, 1), (2, 1)]                       # (stride, pad) of conv1, conv2; 3x3 kernels
        for layer, (stride, pad) in zip(self.layers[:2], geo):
            cols = im2col(img, 3, 3, stride, pad)
            ho = conv_out_size(img.shape[2], 3, stride, pad)
            z = eng.ff(layer, cols) + layer.b[:, None]
            cache.append((layer, cols, z, img.shape, stride, pad))
            img = cols_to_nchw(_relu(z), bsz, ho, ho)
        h = img.reshape(bsz, -1).T                   # [C*H*W, B]
        for i, layer in enumerate(self.layers[2:]):
            z = eng.ff(layer, h) + layer.b[:, None]
            cache.append((layer, h, z))
            h = z if i == 1 else _relu(z)
        return h, cache

    def backward(self, eng, dlogits: np.ndarray, cache) -> list[tuple[GemmLayer, np.ndarray, np.ndarray]]:
        """Gradients (layer, dW, db) from dL/dlogits [10, B]."""
        grads = []
        dz = dlogits
        if self.cfg.model == "mlp":
            for i in range(len(cache) - 1, -1, -1):
                layer, h, _ = cache[i]
                grads.append((layer, eng.wu(layer, dz, h), dz.sum(axis=1)))
                if layer.needs_dx:
                    dz = eng.bp(layer, dz) * (cache[i - 1][2] > 0)
            return grads
        bsz = dlogits.shape[1]
        for i in (3, 2):                               # fully connected head
            layer, h, _ = cache[i]
            grads.append((layer, eng.wu(layer, dz, h), dz.sum(axis=1)))
            dh = eng.bp(layer, dz)
            dz = dh * (cache[i - 1][2] > 0) if i == 3 else dh
        # dz is d(flattened conv2 activation) [C*H*W, B]; back into conv2's GEMM layout.
        layer, cols, z, shape, stride, pad = cache[1]
        ho = conv_out_size(shape[2], 3, stride, pad)
        dz = nchw_to_cols(dz.T.reshape(bsz, z.shape[0], ho, ho)) * (z > 0)
        for i in (1, 0):
            layer, cols, z, shape, stride, pad = cache[i]
            grads.append((layer, eng.wu(layer, dz, cols), dz.sum(axis=1)))
            if layer.needs_dx:
                dimg = col2im(eng.bp(layer, dz), shape, 3, 3, stride, pad)
                dz = nchw_to_cols(dimg) * (cache[i - 1][2] > 0)
        return grads


def _softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z = logits - logits.max(axis=0, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=0, keepdims=True)
    bsz = y.size
    loss = float(-np.log(p[y, np.arange(bsz)] + 1e-12).mean())
    d = p.copy()
    d[y, np.arange(bsz)] -= 1.0
    return loss, d / bsz


def evaluate(model: Model, eng, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Accuracy with the FF GEMMs of ``eng`` at the plan targets, hard masks (the deployed N:M model)."""
    correct = 0
    used = getattr(eng, "used", None)
    before = Counter(used) if used is not None else None
    eng.begin_step(model.layers, _final_phases(model.layers))
    if used is not None:                     # DeviceEngine.used counts training steps only
        used.clear()
        used.update(before)
    for i in range(0, len(y), batch):
        logits, _ = model.forward(eng, x[i:i + batch])
        correct += int((logits.argmax(axis=0) == y[i:i + batch]).sum())
    return correct / len(y)


def _hardware(eng, hw):
    """(spec, runtime_n) the run is priced on: the device's own, else ``hw`` = (spec, runtime_n) or None."""
    if getattr(eng, "acc", None) is not None:
        return eng.acc.spec, eng.runtime_n
    return hw


def train_run(cfg: RunConfig, eng, data, log=print, hw=None) -> dict:
    """Train one configuration; returns its result record (the train.json ``runs`` entry).

    ``hw``: (ArchSpec, runtime_n) to price a float-engine run on (a device run uses its own).
    """
    xtr, ytr, xte, yte = data
    if cfg.train_limit is not None:
        xtr, ytr = xtr[:cfg.train_limit], ytr[:cfg.train_limit]
    model = Model(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    steps_per_epoch = -(-len(ytr) // cfg.batch_size)
    recipe = cfg.make_recipe(steps_per_epoch)
    lam = cfg.lam_value
    hardware = _hardware(eng, hw)
    ledgers = {}
    if hardware is not None and cfg.method != "dense":
        spec, runtime_n = hardware
        shapes = [layer.shape for layer in model.layers]
        ledgers = {"kernel": planmod.StepLedger(spec, runtime_n, shapes, cfg.method, cfg.batch_size),
                   "runtime_n": planmod.StepLedger(spec, planmod.full_runtime_n(spec.m), shapes, cfg.method,
                                                   cfg.batch_size)}
    rname = "" if cfg.method == "dense" or cfg.recipe == "srste" else f"+{cfg.recipe}"
    label = f"{cfg.model} {cfg.method}{rname}{' ' + cfg.nm_label if cfg.nm_label else ''} [{eng.backend}]"
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / cfg.epochs))   # cosine schedule per epoch
        order = rng.permutation(len(ytr))
        losses = []
        used0 = Counter(getattr(eng, "used", None) or {})
        for step, i in enumerate(range(0, len(order), cfg.batch_size)):
            idx = order[i:i + cfg.batch_size]
            phases = {layer.name: recipe.phase(*(layer.target or (None, None)), epoch - 1, step)
                      for layer in model.layers}
            for ledger in ledgers.values():
                ledger.record(phases)
            eng.begin_step(model.layers, phases)
            logits, cache = model.forward(eng, xtr[idx])
            loss, dlogits = _softmax_xent(logits, ytr[idx])
            losses.append(loss)
            for layer, dw, db in model.backward(eng, dlogits, cache):
                dw = dw + bdwp.srste_decay(layer.w, eng.masks[layer.name], lam, cfg.decay_mask)
                layer.vw = cfg.momentum * layer.vw + dw
                layer.vb = cfg.momentum * layer.vb + db
                layer.w -= lr * layer.vw
                layer.b -= lr * layer.vb
        acc = evaluate(model, eng, xte, yte)
        phase_labels = sorted({ph.label.split(" ")[0] for ph in phases.values() if not ph.dense})
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "test_accuracy": acc,
                        "phase": ",".join(phase_labels) or "dense",
                        "decay": max((ph.decay for ph in phases.values()), default=0.0)})
        ran = _epoch_passes(getattr(eng, "used", None), used0)
        log(f"  {label:28s} epoch {epoch:2d}/{cfg.epochs}  loss {np.mean(losses):.4f}  test acc {acc:.4f}  "
            f"{history[-1]['phase']}{' d=%.3g' % history[-1]['decay'] if history[-1]['decay'] else ''}  "
            f"({time.perf_counter() - t0:.1f} s){'  ran: ' + ran if ran else ''}")
    rec = {
        "model": cfg.model, "method": cfg.method, "nm": cfg.nm_label, "backend": eng.backend,
        "recipe": cfg.recipe if cfg.method != "dense" else None,
        "test_accuracy": history[-1]["test_accuracy"], "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "momentum": cfg.momentum, "lam": lam, "decay_mask": cfg.decay_mask, "seed": cfg.seed,
        "train_samples": int(len(ytr)), "test_samples": int(len(yte)), "history": history,
        "seconds": round(time.perf_counter() - t0, 2),
        "kernel_calls": int(getattr(getattr(eng, "acc", None), "calls", 0)),
        "final_weights": [layer.w for layer in model.layers],
    }
    if cfg.method != "dense":
        rec["plan"] = {layer.name: (f"{layer.target[0]}:{layer.target[1]}" if layer.target else "dense")
                       for layer in model.layers}
        rec["frames"] = {layer.name: recipe.frames(*layer.target) for layer in model.layers if layer.target}
        rec["recipe_params"] = {"dense_epochs": recipe.dense_epochs, "fine_epochs": recipe.fine_epochs,
                                "decay_coef": recipe.coef if cfg.recipe.startswith("mdgf-") else None,
                                "steps_per_epoch": steps_per_epoch}
        rec["flops_fraction"] = round(_flops_fraction(model.layers, recipe, cfg, steps_per_epoch), 4)
    if ledgers:
        rec["modelled"] = {k: v.report() for k, v in ledgers.items()}
        for k, what in (("kernel", f"runtime_n {list(ledgers['kernel'].runtime_n)}"), ("runtime_n", "runtime N")):
            m = rec["modelled"][k]
            per = ", ".join(f"{la['layer']} {rec['plan'][la['layer']]} {la['speedup']:.2f}x" for la in m["layers"])
            log(f"  modelled step speedup on {m['arch']} ({what}): {m['speedup']:.2f}x  [{per}]")
    if getattr(eng, "used", None) is not None:
        rec["device_passes"] = {f"{lay} {p} {mode}{'@' + str(n) if n else ''}": c
                                for (lay, p, mode, n), c in sorted(eng.used.items(), key=str)}
    return rec


def _epoch_passes(used: Counter | None, before: Counter) -> str:
    """What a device engine ran in one epoch, per layer: its FF/BP kernel mode and n (e.g.
    ``fc1 FF SPARSE@7 BP SPARSE@7, fc2 FF DENSE BP DENSE``); "" for engines that record nothing."""
    if not used:
        return ""
    per_layer: dict[str, list[str]] = {}
    for (lay, p, mode, n), c in sorted((used - before).items(), key=str):
        per_layer.setdefault(lay, []).append(f"{p} {mode}{'@' + str(n) if n else ''}")
    return ", ".join(f"{lay} {' '.join(v)}" for lay, v in per_layer.items())


def _flops_fraction(layers: list[GemmLayer], recipe: bdwp.Recipe, cfg: RunConfig, steps_per_epoch: int) -> float:
    """Training MACs of the run's GEMMs relative to dense training, counting n/m of every hard N:M
    FF (and BP under BDWP) pass and decaying phases as dense: the FLOPs axis of PGF's trade-off."""
    done = dense = 0.0
    for e in range(cfg.epochs):
        for st in range(steps_per_epoch):
            for layer in layers:
                macs = layer.w.size * layer.spatial
                ph = recipe.phase(*(layer.target or (None, None)), e, st)
                frac = ph.n / ph.m if ph.hard else 1.0
                passes = {"FF": frac, "WU": 1.0}
                if layer.needs_dx:
                    passes["BP"] = frac if cfg.method == "bdwp" else 1.0
                done += macs * sum(passes.values())
                dense += macs * len(passes)
    return done / dense
