"""The suite's checks without a run: the shipped suites validate, a CXR14-sim folder marked
before its generation was killed is resumed, not refused."""

from __future__ import annotations

import json

import losses
from mlbench.layout import SIM_MARKER
from tests.helpers import REPO


def test_shipped_suites_validate():
    from mlbench.suite import check_names, load_suite

    real = load_suite(REPO / "suites/chestxray14.yaml", env={})
    check_names(real)
    cells = 2 * 2 * 10  # tuned: 3 settings per loss, the chosen one on the cell's other seeds
    primary = {("densenet121", "linear", x) for x in ("bce", "msml", "bce+{alpha}*msml")}
    assert len(real.plan.cells) == cells and {c.key for c in real.plan.cells
                                              if len(c.seeds) == 5} == primary
    assert all(len(c.settings) == 3 for c in real.plan.cells)
    assert real.plan.total_runs() == (cells - 3) * (3 + 3 - 1) + 3 * (3 + 5 - 1) == 206
    assert {r.backbone for r in real.runs} == {"densenet121", "resnet50"}
    assert real.config["model"]["pretrained"] is True and real.dataset["image_size"] == 224
    quick = load_suite(REPO / "suites/quickstart.yaml", env={})
    check_names(quick)
    # every registered loss is on the quickstart leaderboard, plus the paper's composite
    wanted = set(losses.list_losses()) | {"bce+0.1*msml"}
    absent = sorted(wanted - {r.loss for r in quick.runs})
    assert not absent, (
        f"{absent} missing from suites/quickstart.yaml: every registered loss (and the paper's "
        "bce+0.1*msml) is on the quickstart leaderboard; add each as one line under `grid.loss`"
    )
    assert {r.seed for r in quick.runs} == {0, 1}
    recipe = "bce:2>aucm[lr=0.1,schedule=step]"  # AUC-M's two-stage recipe, in both suites
    assert recipe in {r.loss for r in quick.runs}
    assert {"db", "bce:10>aucm[lr=0.1,schedule=step]"} <= {c.loss for c in real.plan.cells}
    assert quick.dataset["sim"] is not None


def test_sim_folder_marked_before_generation_resumes(tmp_path):
    from mlbench.suite import sim_root_problem

    sim = {"images": 20, "size": 32, "seed": 0}
    root = tmp_path / "sim"
    ds = {"root": str(root), "sim": sim}
    assert sim_root_problem(ds) is None  # absent
    root.mkdir()
    assert sim_root_problem(ds) is None  # empty
    (root / "images").mkdir()  # a generation killed half-way, marked first
    (root / SIM_MARKER).write_text(json.dumps(sim))
    assert sim_root_problem(ds) is None
    (root / SIM_MARKER).unlink()
    assert "--set dataset.sim=null" in sim_root_problem(ds)
