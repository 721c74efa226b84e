"""Network workloads as layer tables, and their lowering to the three training GEMMs per layer.

Layer shapes are the standard definitions listed in /work/shared/PAPER.md (CIFAR ResNet-18, CIFAR
VGG-16, the 12 transformer blocks of DeiT-S). Every GEMM uses the kernel's convention
``C[rows][cols] = A[rows][k] . B[k][cols]`` (docs/ARCHITECTURE.md):

====  ==========================  ================  ==================  ==========
pass  rows                        k (reduction)     cols                A operand
====  ==========================  ================  ==================  ==========
FF    Cout                        Cin*kh*kw         batch*Ho*Wo         W, N:M along Cin
BP    Cin*kh*kw                   Cout              batch*Ho*Wo         W^T, N:M along Cout
WU    Cout                        batch*Ho*Wo       Cin*kh*kw           dY (dense)
====  ==========================  ================  ==================  ==========

Lowering policies (stated once, here):

* im2col: the reduction axis of a convolution is flattened as (kh, kw, Cin), so an M-group of the
  FF copy lies along Cin at one kernel position (SR-STE's later NHWC grouping) whenever
  Cin % M == 0; the BP copy groups along Cout. im2col / col2im happen outside the GEMM kernel.
* Grouped axis not a multiple of M (``ragged``): ``"dense"`` (default) runs that pass in DENSE mode
  on the same array (e.g. the 3-channel stem's FF, a 10-class classifier's BP); ``"pad"`` runs it
  sparse with the last group zero-padded (groups then straddle kernel positions, like the first
  SR-STE version).
* The layer that reads the network input (a CNN's stem) computes no input gradient: its BP GEMM
  is skipped (dense and BDWP alike). DeiT-S blocks follow a trained patch embedding, so all their
  BPs run.
* The final classifier stays dense in FF and BP (SR-STE's ResNet recipes) unless
  ``dense_classifier=False``.
* Attention's activation x activation GEMMs (Q.K^T, A.V) are dense in all three passes: their
  "BP" and "WU" are the two operand gradients dA = dC.B^T and dB = A^T.dC.
* Non-GEMM work (softmax, normalisation, activations, pooling, the optimizer) is not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Layer", "Gemm", "NETWORKS", "network", "network_names", "lower_layer", "lower_network",
           "ff_macs_per_sample", "WorkloadError", "RAGGED_POLICIES"]

RAGGED_POLICIES = ("dense", "pad")


class WorkloadError(ValueError):
    """A bad network name, layer shape or lowering option."""


@dataclass(frozen=True)
class Layer:
    """One layer (or one repeated group of identical layers).

    ``kind`` is "conv" (Cin, Cout, kernel, Hout=Wout), "fc" (a linear layer applied to ``tokens``
    positions per sample: tokens=1 for a CNN classifier, 197 for DeiT-S) or "attn" (an activation x
    activation GEMM per head: rows x k times k x cols, ``heads`` times per sample).
    """

    name: str
    kind: str
    cin: int = 0
    cout: int = 0
    kernel: int = 1
    hout: int = 1
    tokens: int = 1
    count: int = 1
    # attn only: C[rows][cols] = A[rows][k] . B[k][cols], per head and sample
    rows: int = 0
    k: int = 0
    cols: int = 0
    heads: int = 1
    classifier: bool = False
    takes_input: bool = False   # consumes the network input: no input gradient, BP skipped

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "fc", "attn"):
            raise WorkloadError(f"layer {self.name!r}: kind must be conv, fc or attn, got {self.kind!r}")
        dims = ("rows", "k", "cols", "heads") if self.kind == "attn" else ("cin", "cout", "kernel", "hout", "tokens")
        for d in dims + ("count",):
            if getattr(self, d) < 1:
                raise WorkloadError(f"layer {self.name!r}: {d} must be >= 1, got {getattr(self, d)}")

    @property
    def positions(self) -> int:
        """Output positions per sample (Ho*Wo for a conv, tokens for a linear layer)."""
        return self.hout * self.hout if self.kind == "conv" else self.tokens

    @property
    def reduction(self) -> int:
        """FF reduction length of a weight layer: Cin*kh*kw."""
        return self.cin * self.kernel * self.kernel

    @property
    def ff_macs_per_sample(self) -> int:
        if self.kind == "attn":
            return self.rows * self.k * self.cols * self.heads * self.count
        return self.cout * self.reduction * self.positions * self.count

    @property
    def weights(self) -> int:
        return 0 if self.kind == "attn" else self.cout * self.reduction


@dataclass(frozen=True)
class Gemm:
    """One GEMM of a training step: ``count`` identical launches of C[rows][cols] = A[rows][k].B[k][cols]."""

    layer: str
    pass_: str          # FF, BP or WU
    rows: int
    k: int
    cols: int
    sparse: bool        # A is N:M compressed along k (SPARSE mode) or dense (DENSE mode)
    count: int = 1

    @property
    def macs(self) -> int:
        """Dense-equivalent multiply-accumulates of all ``count`` launches."""
        return self.rows * self.k * self.cols * self.count


def _sparse_ok(axis_len: int, m: int, ragged: str) -> bool:
    return axis_len % m == 0 or ragged == "pad"


def lower_layer(layer: Layer, *, batch: int, m: int, bdwp: bool,
                ragged: str = "dense", dense_classifier: bool = True) -> list[Gemm]:
    """The FF, BP and WU GEMMs of one layer for a training step of ``batch`` samples.

    ``bdwp=False`` lowers dense training (every GEMM DENSE); ``bdwp=True`` makes FF and BP sparse
    where the policy allows (module docstring). ``m`` is the group size of the N:M pattern.
    """
    if batch < 1:
        raise WorkloadError(f"batch must be >= 1, got {batch}")
    if ragged not in RAGGED_POLICIES:
        raise WorkloadError(f"ragged policy must be one of {RAGGED_POLICIES}, got {ragged!r}")
    if layer.kind == "attn":
        n = layer.heads * batch * layer.count
        return [Gemm(layer.name, "FF", layer.rows, layer.k, layer.cols, False, n),
                Gemm(layer.name, "BP", layer.rows, layer.cols, layer.k, False, n),
                Gemm(layer.name, "WU", layer.k, layer.rows, layer.cols, False, n)]
    sparse_layer = bdwp and not (layer.classifier and dense_classifier)
    # FF groups lie along Cin inside the (kh, kw, Cin) flattening; BP groups along Cout.
    ff_sparse = sparse_layer and _sparse_ok(layer.cin, m, ragged)
    bp_sparse = sparse_layer and _sparse_ok(layer.cout, m, ragged)
    red, pos = layer.reduction, batch * layer.positions
    gemms = [Gemm(layer.name, "FF", layer.cout, red, pos, ff_sparse, layer.count)]
    if not layer.takes_input:
        gemms.append(Gemm(layer.name, "BP", red, layer.cout, pos, bp_sparse, layer.count))
    gemms.append(Gemm(layer.name, "WU", layer.cout, pos, red, False, layer.count))
    return gemms


def lower_network(name: str, *, batch: int, m: int, bdwp: bool, ragged: str = "dense",
                  dense_classifier: bool = True) -> list[Gemm]:
    """All GEMMs of one training step of network ``name`` (the input layer's BP skipped)."""
    out: list[Gemm] = []
    for layer in network(name):
        out += lower_layer(layer, batch=batch, m=m, bdwp=bdwp, ragged=ragged,
                           dense_classifier=dense_classifier)
    return out


def ff_macs_per_sample(name: str) -> int:
    return sum(layer.ff_macs_per_sample for layer in network(name))


def _conv(name: str, cin: int, cout: int, k: int, hout: int, count: int = 1, takes_input: bool = False) -> Layer:
    return Layer(name, "conv", cin=cin, cout=cout, kernel=k, hout=hout, count=count, takes_input=takes_input)


def _resnet18_cifar() -> list[Layer]:
    return [
        _conv("conv1", 3, 64, 3, 32, takes_input=True),
        _conv("layer1.conv", 64, 64, 3, 32, 4),
        _conv("layer2.0.conv1", 64, 128, 3, 16),
        _conv("layer2.conv", 128, 128, 3, 16, 3),
        _conv("layer2.0.shortcut", 64, 128, 1, 16),
        _conv("layer3.0.conv1", 128, 256, 3, 8),
        _conv("layer3.conv", 256, 256, 3, 8, 3),
        _conv("layer3.0.shortcut", 128, 256, 1, 8),
        _conv("layer4.0.conv1", 256, 512, 3, 4),
        _conv("layer4.conv", 512, 512, 3, 4, 3),
        _conv("layer4.0.shortcut", 256, 512, 1, 4),
        Layer("fc", "fc", cin=512, cout=10, classifier=True),
    ]


def _vgg16_cifar() -> list[Layer]:
    return [
        _conv("conv1_1", 3, 64, 3, 32, takes_input=True),
        _conv("conv1_2", 64, 64, 3, 32),
        _conv("conv2_1", 64, 128, 3, 16),
        _conv("conv2_2", 128, 128, 3, 16),
        _conv("conv3_1", 128, 256, 3, 8),
        _conv("conv3_x", 256, 256, 3, 8, 2),
        _conv("conv4_1", 256, 512, 3, 4),
        _conv("conv4_x", 512, 512, 3, 4, 2),
        _conv("conv5_x", 512, 512, 3, 2, 3),
        Layer("fc", "fc", cin=512, cout=10, classifier=True),
    ]


# DeiT-S: 197 tokens (196 patches + class token), width 384, 6 heads of 64, MLP ratio 4, 12 blocks.
DEIT_S = {"tokens": 197, "dim": 384, "heads": 6, "mlp": 1536, "blocks": 12}


def _deit_s_blocks() -> list[Layer]:
    t, d, h, f, b = (DEIT_S[x] for x in ("tokens", "dim", "heads", "mlp", "blocks"))
    dh = d // h
    return [
        Layer("qkv", "fc", cin=d, cout=3 * d, tokens=t, count=b),
        Layer("attn.qk", "attn", rows=t, k=dh, cols=t, heads=h, count=b),
        Layer("attn.av", "attn", rows=t, k=t, cols=dh, heads=h, count=b),
        Layer("proj", "fc", cin=d, cout=d, tokens=t, count=b),
        Layer("fc1", "fc", cin=d, cout=f, tokens=t, count=b),
        Layer("fc2", "fc", cin=f, cout=d, tokens=t, count=b),
    ]


NETWORKS = {
    "resnet18_cifar": _resnet18_cifar,
    "vgg16_cifar": _vgg16_cifar,
    "deit_s": _deit_s_blocks,
}

NETWORK_SUMMARIES = {
    "resnet18_cifar": "CIFAR ResNet-18 (32x32, 0.555 GMAC/sample FF)",
    "vgg16_cifar": "CIFAR VGG-16 (32x32, 0.313 GMAC/sample FF)",
    "deit_s": "DeiT-S, the 12 transformer blocks (197 tokens, d=384); attention GEMMs dense",
}


def network_names() -> list[str]:
    return list(NETWORKS)


def network(name: str) -> list[Layer]:
    try:
        return NETWORKS[name]()
    except KeyError:
        raise WorkloadError(f"unknown network {name!r}; known: {', '.join(network_names())}") from None
