"""Multi-label losses for mlbench: MSML beside the baselines, behind one registry.

>>> import losses
>>> losses.list_losses()[:3]
['asl', 'bce', 'bpmll']
>>> loss = losses.create_loss("bce+0.1*msml")
"""

from . import asl, bce, bpmll, cb, focal, hill, lsep, msml, sce, twoway, wbce, zlpr  # noqa: F401  (registers)
from ._common import REDUCTIONS, FunctionalLoss
from ._registry import (
    LossInfo,
    WeightedSumLoss,
    create_loss,
    get_loss_info,
    list_losses,
    register_loss,
)

__all__ = [
    "REDUCTIONS",
    "FunctionalLoss",
    "LossInfo",
    "WeightedSumLoss",
    "create_loss",
    "get_loss_info",
    "list_losses",
    "register_loss",
]
