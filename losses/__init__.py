"""Multi-label losses for mlbench: MSML beside the baselines, behind one registry.

>>> import losses
>>> losses.list_losses()[:3]
['asl', 'bce', 'bpmll']
>>> loss = losses.create_loss("bce+0.1*msml")
"""

import importlib
import pkgutil

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

# Every public module of this package is a loss file; importing it registers its loss, so a
# new loss needs nothing here (one file, one decorator).
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
del _module
