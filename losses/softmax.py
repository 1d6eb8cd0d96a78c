"""Softmax cross-entropy with normalised multi-hot targets (Mahajan et al. 2018).

Registered as ``softmax``; ``sce``, its name before, stays an alias (suites and run ids made
with it keep working). Not the Symmetric Cross-Entropy of the noisy-label literature (Wang et
al., ICCV 2019)."""

from __future__ import annotations

from torch import Tensor

from ._common import FunctionalLoss, positive_mean, prepare, reduce_loss
from ._registry import register_loss


def softmax_loss(
    logits: Tensor, targets: Tensor, *, reduction: str = "mean", validate: bool = True
) -> Tensor:
    """Per sample −Σ_c (y_c/|P|) log softmax(z)_c; 0 if P = ∅.

    Peer: ``torch.nn.functional.cross_entropy`` with probability targets y/|P| (a row without
    positives has all-zero targets there, so 0 as here), checked by
    ``tests/losses/test_peers.py``. Source: Mahajan et al. 2018 (arXiv:1805.00932): softmax
    cross-entropy with the multi-hot target spread evenly over the positives (no official
    code).
    Deviation: bf16 logits are clamped to ±65504 (:mod:`losses._common`).

    ``logits``, ``targets``, ``reduction`` and ``validate`` follow the package convention
    (:mod:`losses._common`).
    """
    z, y = prepare(logits, targets, validate=validate)
    return reduce_loss(positive_mean(-z.log_softmax(dim=1), y), reduction)


@register_loss(
    "softmax",
    aliases=("sce",),
    reference="Mahajan et al. 2018, Exploring the Limits of Weakly Supervised Pretraining (ECCV)",
    peer="torch.nn.functional.cross_entropy with probability targets y/|P|",
)
class SoftmaxCELoss(FunctionalLoss, fn=softmax_loss):
    """Module form of :func:`softmax_loss`."""
