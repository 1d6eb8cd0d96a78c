"""ChestX-ray14 data: ``release`` (the release files parsed: label table, split lists,
images; no torch), ``cache`` (the prepared cache: every image decoded and resized once),
``nih`` (the dataset, reading through both), ``sim`` and ``phantom`` (CXR14-sim in the same
layout, with rendered chest phantoms), ``transforms`` (uint8 images to normalised tensors)
and ``locks`` (one process at a time builds a cache or generates a sim folder). Imports
``mlbench.layout`` (file names, URL, choices) and nothing else of mlbench; torch and
torchvision load with the face (the dataset and the transforms). Contract:
docs/ARCHITECTURE.md (``mlbench.data``).
"""

from mlbench.data.cache import prepare_cache
from mlbench.data.nih import ChestXray14, WithNoFinding
from mlbench.data.release import FINDINGS, DatasetError
from mlbench.data.sim import generate_sim
from mlbench.data.transforms import build_transforms

__all__ = [
    "FINDINGS",
    "ChestXray14",
    "DatasetError",
    "WithNoFinding",
    "prepare_cache",
    "generate_sim",
    "build_transforms",
]
