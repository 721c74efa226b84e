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
"ff" by default, see hostpy.bdwp). Everything is deterministic, so the numpy and csim backends
train to bit-identical weights (tests/test_hostpy_train.py checks it).

Layer sparsity policy (PAPER.md pitfall 4): a layer is sparse when its grouped axes are multiples
of M, except the final classifier, which stays dense as in the SR-STE recipes; the CNN's first
conv (Cin*kh*kw = 9) is therefore dense. The first layer of each model needs no dX, so its BP GEMM
is skipped.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import bdwp
from .accel import Accelerator
from .layout import col2im, cols_to_nchw, conv_out_size, im2col, nchw_to_cols
from .nm import NMCompressed
from .quant import dequantize, quantize

__all__ = ["RunConfig", "load_digits_split", "train_run", "FloatEngine", "DeviceEngine", "kept_mask", "MODELS"]

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
    lam: float = bdwp.DEFAULT_LAMBDA
    decay_mask: str = "ff"
    seed: int = 0
    train_limit: int | None = None  # use only the first N training samples (quick runs)

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose from {MODELS}")
        if self.method not in bdwp.METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {bdwp.METHODS}")
        if self.decay_mask not in bdwp.DECAY_MASKS:
            raise ValueError(f"unknown decay_mask {self.decay_mask!r}; choose from {bdwp.DECAY_MASKS}")

    @property
    def nm_label(self) -> str | None:
        return None if self.method == "dense" else f"{self.n}:{self.m}"


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
    sparse: bool                     # may be pruned N:M (policy above)
    needs_dx: bool                   # False for the first layer
    vw: np.ndarray = field(init=False)
    vb: np.ndarray = field(init=False)

    def __post_init__(self):
        self.vw = np.zeros_like(self.w)
        self.vb = np.zeros_like(self.b)


def _sparse_ok(cout: int, k: int, m: int, classifier: bool) -> bool:
    return not classifier and k % m == 0 and cout % m == 0


def _init(rng, cout: int, k: int) -> np.ndarray:
    return rng.standard_normal((cout, k)) * math.sqrt(2.0 / k)      # He init for ReLU nets


def build_layers(cfg: RunConfig) -> list[GemmLayer]:
    rng = np.random.default_rng(cfg.seed)
    if cfg.model == "mlp":
        dims = [("fc1", 64, 256), ("fc2", 256, 128), ("fc3", 128, 10)]
    else:
        dims = [("conv1", 9, 16), ("conv2", 16 * 9, 32), ("fc1", 32 * 4 * 4, 64), ("fc2", 64, 10)]
    layers = []
    for i, (name, k, cout) in enumerate(dims):
        layers.append(GemmLayer(name, _init(rng, cout, k), np.zeros(cout), sparse=_sparse_ok(cout, k, cfg.m, i == len(dims) - 1),
                                needs_dx=i > 0))
    return layers


# ---- engines -----------------------------------------------------------------------------------
def kept_mask(c: NMCompressed) -> np.ndarray:
    """Boolean dense mask of the slots a compressed operand keeps (its N:M mask)."""
    lanes, g, _ = c.indices.shape
    mask = np.zeros((lanes, g * c.m), dtype=bool)
    pos = np.arange(g)[None, :, None] * c.m + c.indices.astype(np.intp)
    np.put_along_axis(mask, pos.reshape(lanes, -1), True, axis=1)
    mask = mask[:, :c.k]
    return mask if c.axis == 1 else mask.T


def _layer_method(cfg: RunConfig, layer: GemmLayer) -> str:
    return cfg.method if layer.sparse else "dense"


class FloatEngine:
    """float64 GEMMs on the host with hostpy.bdwp masks (the algorithmic reference)."""

    backend = "float"

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.masks: dict[str, bdwp.LayerMasks] = {}

    def begin_step(self, layers: list[GemmLayer]) -> None:
        for layer in layers:
            self.masks[layer.name] = bdwp.masks_for(layer.w, _layer_method(self.cfg, layer), self.cfg.n, self.cfg.m)

    def ff(self, layer: GemmLayer, x: np.ndarray) -> np.ndarray:
        return bdwp.linear_forward(layer.w, x, self.masks[layer.name])

    def bp(self, layer: GemmLayer, dy: np.ndarray) -> np.ndarray:
        mk = self.masks[layer.name]
        return (layer.w if mk.bp is None else layer.w * mk.bp).T @ dy

    def wu(self, layer: GemmLayer, dy: np.ndarray, x: np.ndarray) -> np.ndarray:
        return dy @ x.T


class DeviceEngine:
    """Every GEMM through an Accelerator, with quantized operands (module docstring)."""

    def __init__(self, cfg: RunConfig, acc: Accelerator):
        s = acc.spec
        if cfg.method != "dense" and s.sparse and (cfg.n, cfg.m) != (s.n, s.m):
            raise ValueError(f"run is {cfg.n}:{cfg.m} but {s.name} computes {s.n}:{s.m}")
        if cfg.method != "dense" and not s.sparse:
            raise ValueError(f"{cfg.method} needs a sparse architecture, {s.name} is dense")
        self.cfg, self.acc, self.bits = cfg, acc, s.data_bits
        self.backend = acc.backend
        self.state: dict[str, tuple] = {}
        self.masks: dict[str, bdwp.LayerMasks] = {}

    def begin_step(self, layers: list[GemmLayer]) -> None:
        """Pre-generation: quantize each master W and PRUNE it on the kernel once per iteration."""
        for layer in layers:
            qw = quantize(layer.w, self.bits, name=f"{layer.name}.W")
            method = _layer_method(self.cfg, layer)
            pw = self.acc.prune(qw.q) if method != "dense" else None
            self.state[layer.name] = (qw, pw, method)
            self.masks[layer.name] = bdwp.LayerMasks(
                ff=kept_mask(pw.ff) if pw is not None else None,
                bp=kept_mask(pw.bp) if method == "bdwp" else None)

    def ff(self, layer: GemmLayer, x: np.ndarray) -> np.ndarray:
        qw, pw, _ = self.state[layer.name]
        qx = quantize(x, self.bits, name=f"{layer.name}.X")
        acc = self.acc.ff(pw, qx.q) if pw is not None else self.acc.gemm(qw.q, qx.q)
        return dequantize(acc, qw.scale, qx.scale)

    def bp(self, layer: GemmLayer, dy: np.ndarray) -> np.ndarray:
        qw, pw, method = self.state[layer.name]
        qd = quantize(dy, self.bits, name=f"{layer.name}.dY")
        acc = self.acc.bp(pw, qd.q) if method == "bdwp" else self.acc.gemm(np.ascontiguousarray(qw.q.T), qd.q)
        return dequantize(acc, qw.scale, qd.scale)

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
    """Accuracy with the FF GEMMs of ``eng`` (the sparse FF weights on a device)."""
    correct = 0
    eng.begin_step(model.layers)
    for i in range(0, len(y), batch):
        logits, _ = model.forward(eng, x[i:i + batch])
        correct += int((logits.argmax(axis=0) == y[i:i + batch]).sum())
    return correct / len(y)


def train_run(cfg: RunConfig, eng, data, log=print) -> dict:
    """Train one configuration; returns its result record (the train.json ``runs`` entry)."""
    xtr, ytr, xte, yte = data
    if cfg.train_limit is not None:
        xtr, ytr = xtr[:cfg.train_limit], ytr[:cfg.train_limit]
    model = Model(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    label = f"{cfg.model} {cfg.method}{' ' + cfg.nm_label if cfg.nm_label else ''} [{eng.backend}]"
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / cfg.epochs))   # cosine schedule per epoch
        order = rng.permutation(len(ytr))
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            eng.begin_step(model.layers)
            logits, cache = model.forward(eng, xtr[idx])
            loss, dlogits = _softmax_xent(logits, ytr[idx])
            losses.append(loss)
            for layer, dw, db in model.backward(eng, dlogits, cache):
                dw = dw + bdwp.srste_decay(layer.w, eng.masks[layer.name], cfg.lam, cfg.decay_mask)
                layer.vw = cfg.momentum * layer.vw + dw
                layer.vb = cfg.momentum * layer.vb + db
                layer.w -= lr * layer.vw
                layer.b -= lr * layer.vb
        acc = evaluate(model, eng, xte, yte)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "test_accuracy": acc})
        log(f"  {label:28s} epoch {epoch:2d}/{cfg.epochs}  loss {np.mean(losses):.4f}  test acc {acc:.4f}  "
            f"({time.perf_counter() - t0:.1f} s)")
    return {
        "model": cfg.model, "method": cfg.method, "nm": cfg.nm_label, "backend": eng.backend,
        "test_accuracy": history[-1]["test_accuracy"], "epochs": cfg.epochs, "batch_size": cfg.batch_size,
        "lr": cfg.lr, "momentum": cfg.momentum, "lam": cfg.lam, "decay_mask": cfg.decay_mask, "seed": cfg.seed,
        "train_samples": int(len(ytr)), "test_samples": int(len(yte)), "history": history,
        "seconds": round(time.perf_counter() - t0, 2),
        "kernel_calls": int(getattr(getattr(eng, "acc", None), "calls", 0)),
        "final_weights": [layer.w for layer in model.layers],
    }
