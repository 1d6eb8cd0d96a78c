"""Multi-label losses for mlbench: MSML beside the baselines, behind one registry.

>>> import losses
>>> losses.list_losses()[:3]
['asl', 'bce', 'bpmll']
>>> loss = losses.create_loss("bce+0.1*msml")
"""

import importlib
import pkgutil

from ._common import REDUCTIONS, FunctionalLoss
from ._optim import LOSS_OPTIMIZERS, PDSCA, PESG, create_optimizer
from ._registry import (
    LossInfo,
    WeightedSumLoss,
    create_loss,
    get_loss_info,
    info_for_module,
    list_losses,
    loss_aliases,
    register_loss,
)
from ._stateful import LossContract, StatefulLoss, training_contract

__all__ = [
    "LOSS_OPTIMIZERS",
    "PDSCA",
    "PESG",
    "REDUCTIONS",
    "FunctionalLoss",
    "LossContract",
    "LossInfo",
    "StatefulLoss",
    "WeightedSumLoss",
    "create_loss",
    "create_optimizer",
    "get_loss_info",
    "info_for_module",
    "list_losses",
    "loss_aliases",
    "register_loss",
    "training_contract",
]

# Every public module of this package is a loss file; importing it registers its loss, so a
# new loss needs nothing here (one file, one decorator).
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
del _module
