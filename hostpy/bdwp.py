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

``method="srste"`` is FF-only sparsity (BP uses dense W), ``method="dense"`` no sparsity at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nm import nm_mask

__all__ = ["DECAY_MASKS", "METHODS", "LayerMasks", "masks_for", "linear_forward", "linear_backward",
           "srste_decay"]

DECAY_MASKS = ("ff", "bp", "union", "intersection")
METHODS = ("dense", "srste", "bdwp")
DEFAULT_LAMBDA = 2e-4


@dataclass(frozen=True)
class LayerMasks:
    ff: np.ndarray | None     # mask applied in FF (None: dense)
    bp: np.ndarray | None     # mask applied in BP (None: dense)


def masks_for(w: np.ndarray, method: str, n: int, m: int) -> LayerMasks:
    """Masks one iteration uses for W[Cout, Cin] under ``method``."""
    if method == "dense":
        return LayerMasks(None, None)
    ff = nm_mask(w, n, m, axis=1)
    if method == "srste":
        return LayerMasks(ff, None)
    if method == "bdwp":
        return LayerMasks(ff, nm_mask(w, n, m, axis=0))
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def linear_forward(w: np.ndarray, x: np.ndarray, masks: LayerMasks) -> np.ndarray:
    """Y[Cout, batch] = W_ff . X."""
    wf = w if masks.ff is None else w * masks.ff
    return wf @ x


def linear_backward(w: np.ndarray, x: np.ndarray, dy: np.ndarray, masks: LayerMasks
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(dX, dW): dX = W_bp^T . dY (sparse under BDWP), dW = dY . X^T (dense)."""
    wb = w if masks.bp is None else w * masks.bp
    return wb.T @ dy, dy @ x.T


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
