"""BDWP (bidirectional weight pruning) with SR-STE for one linear layer, in float (golden model).

Per iteration the dense master weights W[Cout, Cin] are pruned twice:

* ``mask_ff``: N:M along Cin (axis 1) — FF computes Y = (W*mask_ff) . X
* ``mask_bp``: N:M along Cout (axis 0) — BP computes dX = (W*mask_bp)^T . dY
* WU stays dense: dW = dY . X^T, so every weight keeps receiving gradient.

SR-STE adds ``lam * (1 - mask) * W`` to dW before the optimizer. Which mask it uses under BDWP is
a choice (PAPER.md pitfall 6); ``decay_mask`` selects it:

* ``"ff"`` (default): the forward mask — the weights that inference keeps, as in SR-STE itself;
* ``"bp"``: the backward mask;
* ``"union"``: decay only weights pruned in *both* directions (kept by either mask);
* ``"intersection"``: decay weights pruned in *either* direction.

``method="srste"`` is FF-only sparsity: one mask along Cin, and BP multiplies the same masked W
(transposed) as the reference code's autograd does (that W is not N:M along Cout, so on a kernel
it is a DENSE GEMM). ``method="dense"`` no sparsity at all.

Recipes (how the pattern changes during training), each combinable with both directions
(``method`` "srste" = FF only, "bdwp" = FF and BP); docs/RECIPES.md compares them with the public
code of SR-STE and of Progressive Gradient Flow (PGF, Bambhaniya et al. 2024):

* ``"srste"``: the hard N:M mask from the first sparse step on, plus the SR-STE decay term
  (lambda = 2e-4 by default).
* ``"mdgf-linear"`` / ``"mdgf-exp"`` (PGF mask decay of gradient flow): the effective weight is
  ``W * (mask + (1 - mask) * d)`` with ``d = max(0, 1 - c*t)`` or ``exp(-c*t)`` (t: the training
  step counted from the end of the dense epochs), the gradient passes straight through to W. Only
  at ``d == 0`` are the effective weights N:M.
* ``"sdgf-sparsify"`` / ``"sdgf-densify"`` / ``"sdgf-fine"`` / ``"sdgf-custom"`` (PGF structure
  decay): hard masks whose N:M follows a schedule of epoch frames (:func:`structure_schedule`).

PGF's recipes carry no SR-STE term in its code (lambda = 0 by default here too); ``lam`` overrides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .nm import nm_mask, nm_topn_indices

__all__ = ["DECAY_MASKS", "METHODS", "LayerMasks", "masks_for", "linear_forward", "linear_backward",
           "srste_decay", "pattern_mask", "RECIPES", "STRUCTURE_KINDS", "Phase", "Recipe", "structure_schedule",
           "recipe_lambda", "parse_nm_list"]

DECAY_MASKS = ("ff", "bp", "union", "intersection")
METHODS = ("dense", "srste", "bdwp")
DEFAULT_LAMBDA = 2e-4


@dataclass(frozen=True)
class LayerMasks:
    ff: np.ndarray | None     # mask applied in FF (None: dense)
    bp: np.ndarray | None     # mask applied in BP (None: dense)
    decay: float = 0.0        # PGF mask decay: pruned weights enter FF/BP scaled by this (0: hard N:M)

    def effective(self, w: np.ndarray, which: str) -> np.ndarray:
        """The weight the ``which`` ("ff" | "bp") GEMM multiplies: W * (mask + (1 - mask) * decay)."""
        mask = self.ff if which == "ff" else self.bp
        if mask is None:
            return w
        if self.decay == 0.0:
            return w * mask
        return w * np.where(mask, 1.0, self.decay)


def pattern_mask(w: np.ndarray, n: int, m: int, axis: int = 1) -> np.ndarray:
    """Boolean mask keeping the n largest |w| of every m consecutive elements along ``axis``.

    The golden N:M rule (hostpy.nm: ties to the lower in-group index, last group zero-padded),
    extended to the patterns PGF's schedules visit: ``n >= m`` keeps everything (dense) and m may
    be any integer >= 2 (densify/fine frames reach 1:128 or 16:128), not only the hardware's M.
    """
    if m < 2 or n < 1:
        raise ValueError(f"pattern n:m needs n >= 1 and m >= 2, got {n}:{m}")
    w = np.asarray(w)
    if n >= m:
        return np.ones(w.shape, dtype=bool)
    if m <= 16 and m & (m - 1) == 0:
        return nm_mask(w, n, m, axis=axis)
    lanes = w if axis == 1 else w.T
    length = lanes.shape[1]
    g = -(-length // m)
    grp = np.zeros((lanes.shape[0], g * m), dtype=lanes.dtype)
    grp[:, :length] = lanes
    grp = grp.reshape(lanes.shape[0], g, m)
    mask = np.zeros(grp.shape, dtype=bool)
    np.put_along_axis(mask, nm_topn_indices(grp, n).astype(np.intp), True, axis=-1)
    mask = mask.reshape(lanes.shape[0], -1)[:, :length]
    return mask if axis == 1 else mask.T


def masks_for(w: np.ndarray, method: str, n: int, m: int, decay: float = 0.0) -> LayerMasks:
    """Masks one iteration uses for W[Cout, Cin] under ``method`` (``decay``: PGF mask decay factor)."""
    if method == "dense":
        return LayerMasks(None, None)
    ff = pattern_mask(w, n, m, axis=1)
    if method == "srste":
        return LayerMasks(ff, ff, decay)          # BP: the FF-masked W, transposed
    if method == "bdwp":
        return LayerMasks(ff, pattern_mask(w, n, m, axis=0), decay)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def linear_forward(w: np.ndarray, x: np.ndarray, masks: LayerMasks) -> np.ndarray:
    """Y[Cout, batch] = W_ff . X."""
    return masks.effective(w, "ff") @ x


def linear_backward(w: np.ndarray, x: np.ndarray, dy: np.ndarray, masks: LayerMasks
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(dX, dW): dX = W_bp^T . dY (sparse under BDWP), dW = dY . X^T (dense, straight through)."""
    return masks.effective(w, "bp").T @ dy, dy @ x.T


def srste_decay(w: np.ndarray, masks: LayerMasks, lam: float = DEFAULT_LAMBDA,
                decay_mask: str = "ff") -> np.ndarray:
    """The SR-STE term lam * (1 - mask) * W to add to dW (zero for dense training)."""
    if decay_mask not in DECAY_MASKS:
        raise ValueError(f"unknown decay_mask {decay_mask!r}; choose from {DECAY_MASKS}")
    if masks.ff is None:
        return np.zeros_like(w)
    ff = masks.ff
    bp = masks.bp if masks.bp is not None else ff
    kept = {"ff": ff, "bp": bp, "union": ff | bp, "intersection": ff & bp}[decay_mask]
    return lam * (~kept) * w


# ---- recipes: SR-STE and Progressive Gradient Flow ---------------------------------------------

RECIPES = ("srste", "mdgf-linear", "mdgf-exp", "sdgf-sparsify", "sdgf-densify", "sdgf-fine", "sdgf-custom")
STRUCTURE_KINDS = ("sparsify", "densify", "fine", "custom")
DECAY_AT_END = 4.0   # default mask-decay coefficient: c = DECAY_AT_END / (steps of the sparse phase)


def recipe_lambda(recipe: str) -> float:
    """Default SR-STE lambda of a recipe: 2e-4 for srste, 0 for PGF's (its code adds no decay term)."""
    _check_recipe(recipe)
    return DEFAULT_LAMBDA if recipe == "srste" else 0.0


def _check_recipe(recipe: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")


def parse_nm_list(text: str) -> tuple[tuple[int, int], ...]:
    """"15:16,8:16,1:16" -> ((15, 16), (8, 16), (1, 16)); errors name the bad entry."""
    out = []
    for part in str(text).split(","):
        try:
            n, m = (int(v) for v in part.strip().split(":"))
        except ValueError:
            raise ValueError(f"N:M list like 15:16,8:16,1:16 expected, got {text!r}") from None
        if n < 1 or m < 2:
            raise ValueError(f"bad N:M {part!r} in {text!r}: need n >= 1, m >= 2")
        out.append((n, m))
    if not out:
        raise ValueError("empty N:M list")
    return tuple(out)


def structure_schedule(kind: str, n: int, m: int, epochs: int, dense_epochs: int = 0, fine_epochs: int = 0,
                       custom: tuple[tuple[int, int], ...] = ()) -> dict[int, tuple[int, int]]:
    """PGF's structure-decay (SdGf) schedule: {first epoch of a frame (0-based): (n, m)}.

    As ``get_decay_config`` of PGF's code (timm/sparse_pruning/sparse_functions.py): the
    ``epochs - dense_epochs - fine_epochs`` sparse epochs are split into equal frames, frame i
    starting at ``dense_epochs + int(i * frame_size)``; a later frame with the same start epoch
    replaces an earlier one (short runs skip frames, as there). The fine-tune epochs keep the last
    frame, the target.

    * sparsify: log2(M/N) + 1 frames (M-1):M, M/2:M, M/4:M, ... N:M (1:16: 15:16 8:16 4:16 2:16 1:16)
    * densify: 4 frames N:8M, N:4M, N:2M, N:M (1:8: 1:64 1:32 1:16 1:8)
    * fine: 4 frames 8N:8M, 4N:4M, 2N:2M, N:M (1:8: 8:64 4:32 2:16 1:8)
    * custom: the given list, in equal frames (PGF's code takes an epoch -> N:M dict instead)
    """
    if kind not in STRUCTURE_KINDS:
        raise ValueError(f"unknown structure decay {kind!r}; choose from {', '.join(STRUCTURE_KINDS)}")
    if kind == "sparsify":
        if m % n or (m // n) & (m // n - 1):
            raise ValueError(f"sparsify needs M/N a power of two, got {n}:{m}")
        frames = [(m - 1 if i == 0 else m >> i, m) for i in range(int(math.log2(m // n)) + 1)]
    elif kind == "densify":
        frames = [(n, m << (3 - i)) for i in range(4)]
    elif kind == "fine":
        frames = [(n << (3 - i), m << (3 - i)) for i in range(4)]
    else:
        if not custom:
            raise ValueError("sdgf-custom needs a list of frames (e.g. 15:16,8:16,4:16,2:16,1:16)")
        frames = list(custom)
    size = (epochs - dense_epochs - fine_epochs) / len(frames)
    out: dict[int, tuple[int, int]] = {}
    for i, f in enumerate(frames):
        out[int(dense_epochs + int(i * size))] = f
    return out


@dataclass(frozen=True)
class Phase:
    """What one layer does in one training step: its pattern n:m (None: dense) and mask-decay factor."""

    n: int | None
    m: int | None
    decay: float = 0.0

    @property
    def dense(self) -> bool:
        return self.n is None or self.n >= self.m

    @property
    def hard(self) -> bool:
        """Effective weights exactly n:m (no decayed pruned weights)."""
        return not self.dense and self.decay == 0.0

    @property
    def label(self) -> str:
        if self.dense:
            return "dense"
        return f"{self.n}:{self.m}" + (f" d={self.decay:.3g}" if self.decay else "")


DENSE_PHASE = Phase(None, None)


@dataclass(frozen=True)
class Recipe:
    """A training recipe over ``epochs`` epochs of ``steps_per_epoch`` steps (see the module docstring).

    ``dense_epochs`` / ``fine_epochs`` are PGF's dense warm-up and binary-mask fine-tune (its
    ``--dense-steps`` / ``--fine-tune-steps`` fractions times the epochs). ``decay_coef`` is the
    mask-decay c (None: DECAY_AT_END / sparse steps, so linear reaches 0 a quarter of the way in
    and exp ends at e^-4). ``custom``: the frames of sdgf-custom.
    """

    name: str = "srste"
    epochs: int = 10
    steps_per_epoch: int = 1
    dense_epochs: int = 0
    fine_epochs: int = 0
    decay_coef: float | None = None
    custom: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        _check_recipe(self.name)
        if self.epochs < 1 or self.steps_per_epoch < 1:
            raise ValueError("a recipe needs epochs >= 1 and steps_per_epoch >= 1")
        if self.dense_epochs < 0 or self.fine_epochs < 0 or self.dense_epochs + self.fine_epochs >= self.epochs:
            raise ValueError(f"dense_epochs ({self.dense_epochs}) + fine_epochs ({self.fine_epochs}) must leave "
                             f"sparse epochs out of {self.epochs}")
        if self.name == "sdgf-custom" and not self.custom:
            raise ValueError("sdgf-custom needs its frames (custom=((15, 16), (8, 16), ...)); CLI: --frames")

    @property
    def sparse_steps(self) -> int:
        return (self.epochs - self.dense_epochs - self.fine_epochs) * self.steps_per_epoch

    @property
    def coef(self) -> float:
        return DECAY_AT_END / self.sparse_steps if self.decay_coef is None else float(self.decay_coef)

    def schedule(self, n: int, m: int) -> dict[int, tuple[int, int]] | None:
        if not self.name.startswith("sdgf-"):
            return None
        return structure_schedule(self.name[5:], n, m, self.epochs, self.dense_epochs, self.fine_epochs, self.custom)

    def decay(self, epoch: int, step: int) -> float:
        """Mask-decay factor at 0-based ``epoch`` and ``step`` within it (0 = hard mask)."""
        if not self.name.startswith("mdgf-") or epoch >= self.epochs - self.fine_epochs:
            return 0.0
        t = (epoch - self.dense_epochs) * self.steps_per_epoch + step
        if self.name == "mdgf-linear":
            return max(1.0 - self.coef * t, 0.0)
        return math.exp(-self.coef * t)

    def phase(self, n: int | None, m: int | None, epoch: int, step: int = 0) -> Phase:
        """The phase of a layer whose plan target is n:m (None: a dense layer) at 0-based ``epoch``, ``step``."""
        if n is None or epoch < self.dense_epochs:
            return DENSE_PHASE
        sched = self.schedule(n, m)
        if sched is not None:
            n, m = sched[max(e for e in sched if e <= epoch)]
        return Phase(n, m, self.decay(epoch, step))

    def final(self, n: int | None, m: int | None) -> Phase:
        """The deployed pattern: the target, hard."""
        return DENSE_PHASE if n is None else Phase(n, m, 0.0)

    def frames(self, n: int, m: int) -> list[tuple[int, str]]:
        """(first epoch, label) of every distinct phase over the run, for reports."""
        out, last = [], None
        for e in range(self.epochs):
            lab = self.phase(n, m, e, 0).label.split(" ")[0]
            if self.phase(n, m, e, 0).decay > 0:
                lab += " decaying"
            if lab != last:
                out.append((e, lab))
                last = lab
        return out
