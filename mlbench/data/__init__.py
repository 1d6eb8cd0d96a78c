"""ChestX-ray14 data: the release parser, the NIH loader, the CXR14-sim generator, the
prepared cache, transforms.

See docs/ARCHITECTURE.md (``mlbench.data``) for the contract.
"""

from mlbench.data.cache import prepare_cache
from mlbench.data.nih import ChestXray14
from mlbench.data.release import FINDINGS, DatasetError
from mlbench.data.sim import generate_sim
from mlbench.data.transforms import build_transforms

__all__ = [
    "FINDINGS",
    "ChestXray14",
    "DatasetError",
    "prepare_cache",
    "generate_sim",
    "build_transforms",
]
