"""Named test sets: what a model trained on ChestX-ray14 is scored on besides its own
text-mined test labels. A :class:`TestSet` is images + labels with a missing-label mask +
patient ids + views + a stated :class:`LabelMap` from the model's 14 NIH outputs to the test
set's findings, with a name and its provenance.

Built in (from the tables that ship with torchxrayvision, on the NIH official test split):
``nih``, ``nih-expert``, ``nih-bbox`` (``nih.py``). External datasets in their own release
layouts: ``padchest``, ``chexpert``, ``mimic-cxr`` (one module each). Build one by name::

    ts = create_test_set("nih-expert", nih_root_or_test_split)
    ts = create_test_set("chexpert", "/data/CheXpert-v1.0-small", split="train",
                         uncertain="ones")
    ts.evaluate(model_scores)                 # (N, 14) probabilities of ts's images
    ts.scores_from_nih(nih_test_scores)       # NIH test sets: rows of the NIH test split

Label maps, policies and their sources: docs/HARNESS.md ("Test sets").
"""

from mlbench.data.testsets import chexpert, mimic, nih, padchest  # noqa: F401  (registers)
from mlbench.data.testsets.base import (
    ImageFiles,
    LabelMap,
    LabelPolicy,
    TestSet,
    TestSetInfo,
    create_test_set,
    get_test_set_info,
    list_test_sets,
    register_test_set,
)

__all__ = [
    "ImageFiles",
    "LabelMap",
    "LabelPolicy",
    "TestSet",
    "TestSetInfo",
    "create_test_set",
    "get_test_set_info",
    "list_test_sets",
    "register_test_set",
]
