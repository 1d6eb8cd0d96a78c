"""The NIH ChestX-ray14 release on disk: file names, download address, choices (torch-free).

One home for these facts: the suite checks (no torch) and ``mlbench.data`` both import them.

Layout (SPEC §3.1), exactly as the NIH box download unpacks::

    ROOT/Data_Entry_2017_v2020.csv  (or Data_Entry_2017.csv)
    ROOT/train_val_list.txt  ROOT/test_list.txt
    ROOT/images/*.png  or  ROOT/images_001/images/*.png ... ROOT/images_012/images/*.png

CXR14-sim writes the same layout plus ``SIM_MARKER``, the parameters it was made with.
"""

from __future__ import annotations

from pathlib import Path

# Preferred first: the 2020 revision corrects labels of the 2017 file.
LABEL_FILES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
SPLIT_FILES = {"train_val": "train_val_list.txt", "test": "test_list.txt"}
NIH_URL = "https://nihcc.app.box.com/v/ChestXray-NIHCC"
VIEWS = ("all", "PA", "AP")
MISSING = ("error", "skip")
# Written by CXR14-sim before generation starts (so a killed generation is resumed, and a
# folder of other data is never taken for, or overwritten as, a simulated one).
SIM_MARKER = ".mlbench_sim.json"


def is_sim(root) -> bool:
    """Whether ``root`` is a CXR14-sim folder (it holds ``SIM_MARKER``): regenerated, never
    re-downloaded, when something in it is missing or broken."""
    return (Path(root) / SIM_MARKER).is_file()
