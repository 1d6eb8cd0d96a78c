"""Named test sets (``eval.test_sets``): every finished run scored on each after training, from
its stored best-epoch scores, stored per test set; adding a test set to a finished results
folder trains nothing; the leaderboard shows one block per test set with CIs and tests.

The fixture is an NIH folder written from the real 2020 label table (real image names,
patients, labels; tiny random PNGs): patients chosen so that each test set has a class that
passes the sparse-class rule (>= 10 positive images of >= 10 patients), hence CIs and tests.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.data.conftest import REAL_TRAIN_PATIENTS, write_real_nih
from tests.helpers import cli, one_error, stored_results, tiny_suite, trained, write_suite

# official test patients (few images each): google2019 "Airspace opacity" YES, an
# Atelectasis box of BBox_List_2017, google2019 "Airspace opacity" NO
AIRSPACE = (26920, 28423, 28430, 28998, 29131, 29906, 9979, 28857, 9375, 13991, 17877, 22706)
BOXED = (72, 3440, 4296, 7710, 8716, 10770, 12637, 15440, 16267, 21007, 25270, 28625)
CLEAR = (1369, 6496, 7318, 8407, 9948, 20980, 22765, 24561, 28129, 28137, 28196, 28263)
THREE = ["nih", "nih-expert", "nih-bbox"]


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-nih")
    write_real_nih(root, test=AIRSPACE + BOXED + CLEAR, train=REAL_TRAIN_PATIENTS, size=16)
    return root


def _suite(root, out, test_sets=None, **changes) -> dict:
    ev = {"bootstrap": 10, **({} if test_sets is None else {"test_sets": test_sets})}
    return tiny_suite(root, out, **{"dataset.sim": None, "dataset.val_fraction": 0.3,
                                    "seeds": [0, 1], "eval": ev, **changes})


@pytest.fixture(scope="module")
def scored(real_root, tmp_path_factory):
    """A suite run with the default test sets, then again with all three: what each stored."""
    folder = tmp_path_factory.mktemp("scored")
    out = folder / "out"
    from mlbench.cli import main

    first = write_suite(folder / "one.yaml", _suite(real_root, out))
    assert main(["run", first, "--no-progress"]) == 0
    before, counts = stored_results(out), trained(out)
    three = write_suite(folder / "three.yaml", _suite(real_root, out, THREE))
    assert main(["run", three, "--no-progress"]) == 0
    return {"out": out, "before": before, "trained": counts, "first": first, "three": three}


def test_adding_test_sets_trains_nothing(scored, capsys):
    out = scored["out"]
    assert trained(out) == scored["trained"] and set(scored["trained"].values()) == {1}
    assert stored_results(out) == scored["before"]  # metrics, curves, test scores as they were
    from mlbench.db import ResultsDB

    with ResultsDB(out, readonly=True) as db:
        runs = {r["id"] for r in db.runs()}
        got = {k: v for k, v in db.scored_test_sets().items()}
        assert got == {"nih-expert": runs, "nih-bbox": runs}
        # no claim after the first run: nothing went back to running
        assert sum(e["status"] == "running" for e in db.events()) == len(runs)
    # the run ids do not depend on the test sets
    ids = []
    for path in (scored["first"], scored["three"]):
        code, text, _ = cli(capsys, "run", path, "--dry-run", "--format", "json")
        assert code == 0
        ids.append(sorted(r["id"] for r in json.loads(text)["runs"]))
    assert ids[0] == ids[1] == sorted(runs)


def test_scored_from_the_runs_own_scores(scored):
    """A test set's scores are the run's test-split scores of its images, the label map
    applied (Nodule or mass <- max(Nodule, Mass))."""
    import numpy as np

    from mlbench.data import FINDINGS
    from mlbench.db import ResultsDB

    with ResultsDB(scored["out"], readonly=True) as db:
        rid = db.runs()[0]["id"]
        scores, _ = db.predictions(rid)
        images = list(db.test_ids(rid)[0])
        got = db.test_set_result(rid, "nih-expert")
    assert got["findings"] == ["Pneumothorax", "Nodule or mass", "Airspace opacity"]
    rows = [images.index(x) for x in got["images"]]
    nod, mass = FINDINGS.index("Nodule"), FINDINGS.index("Mass")
    np.testing.assert_allclose(got["scores"][:, 1],
                               np.maximum(scores[rows, nod], scores[rows, mass]), rtol=1e-6)
    assert got["mask"].all() and 0 < got["targets"][:, 2].sum() < len(rows)


def test_one_block_per_test_set_with_cis_and_tests(scored, capsys):
    out = str(scored["out"])
    code, text, _ = cli(capsys, "leaderboard", out, "--format", "json")
    assert code == 0
    board = json.loads(text)
    assert [t["name"] for t in board["test_sets"]] == THREE
    for t in board["test_sets"]:
        rows = [r for r in t["rows"] if r.get("seeds")]
        assert {r["loss"] for r in rows} == {"bce", "msml"}, t["name"]
        assert all(r["ci_lo"] is not None and r["ci_lo"] < r["mean_auc"] < r["ci_hi"]
                   for r in rows), t["name"]
        msml = next(r for r in rows if r["loss"] == "msml")
        assert msml["p"] is not None and 0 < msml["p"] <= 1, t["name"]
        assert t["info"].get("images", 0) > 0 or t["name"] == "nih"
    assert [(r["a"], r["b"]) for r in board["transfer"]] == [
        ("nih", "nih-expert"), ("nih", "nih-bbox"), ("nih-expert", "nih-bbox")]
    assert all(-1 <= r["tau"] <= 1 and r["verdict"] for r in board["transfer"])
    code, text, _ = cli(capsys, "leaderboard", out)
    for name in THREE:
        assert f"##### Test set {name} #####" in text
    assert "Airspace opacity <- max(Consolidation, Pneumonia, Edema, Infiltration)" in text
    assert "Fracture: not scored" in text and "Ranking transfer" in text
    assert "Δ nih-expert" in text
    code, text, _ = cli(capsys, "leaderboard", out, "--format", "csv")
    assert text.splitlines()[0].startswith("test_set,")
    assert {line.split(",")[0] for line in text.splitlines()[1:]} == set(THREE)
    for fmt, mark in (("md", "## Test set nih-bbox"), ("html", "<h2>Test set nih-bbox</h2>")):
        code, text, _ = cli(capsys, "leaderboard", out, "--format", fmt)
        assert code == 0 and mark in text


def test_the_python_api_gives_each_test_set_its_frame(scored, capsys):
    """``mlbench.results``: one leaderboard frame per test set, the same numbers as the
    leaderboard's json, and the ranking transfer."""
    import mlbench

    res = mlbench.results(scored["out"])
    assert list(res.test_sets) == THREE
    assert res.test_sets["nih"] is res.leaderboard
    code, text, _ = cli(capsys, "leaderboard", str(scored["out"]), "--format", "json")
    board = {t["name"]: t for t in json.loads(text)["test_sets"]}
    for name, frame in res.test_sets.items():
        got = frame.set_index("loss")["mean_auc"]
        want = {r["loss"]: r["mean_auc"] for r in board[name]["rows"] if r.get("seeds")}
        assert set(want) == {"bce", "msml"}
        assert all(got[loss] == pytest.approx(v, abs=1e-9) for loss, v in want.items()), name
    assert len(res.transfer) == 3 and {"tau", "verdict"} <= set(res.transfer.columns)
    assert not res.deltas.empty


def test_status_and_calibrate_per_test_set(scored, capsys):
    out = str(scored["out"])
    code, text, _ = cli(capsys, "status", out, "--format", "json")
    assert code == 0
    sets = {t["name"]: t for t in json.loads(text)["test_sets"]}
    assert list(sets) == THREE
    assert all(t["scored"] == t["finished"] == 4 for t in sets.values())
    assert all(math.isfinite(x["mean_auc"]) for t in sets.values() for x in t["losses"])
    code, text, err = cli(capsys, "calibrate", out, "--test-set", "nih-expert",
                          "--replicates", "8", "--rules", "leaderboard")
    assert code == 0, err
    assert "test set nih-expert stored in" in text
    code, _, err = cli(capsys, "calibrate", out, "--test-set", "padchest", "--replicates", "8")
    assert code == 2 and "no run scored on test set 'padchest'" in one_error(err)


def test_unknown_test_set_refused_before_training(real_root, tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", _suite(real_root, tmp_path / "out", ["nih", "nih-exprt"]))
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2 and "unknown test set 'nih-exprt'" in one_error(err)
    assert not (tmp_path / "out" / "results.db").exists()


@pytest.mark.filterwarnings("ignore:Skipping .* missing image")
def test_part_of_the_release_is_stated(tmp_path, capsys):
    """A user with part of the release (images missing, the full tables): the official split
    restricted to the images present, said in the leaderboard (default test sets and more)."""
    root = tmp_path / "nih"
    made = write_real_nih(root, test=AIRSPACE + BOXED + CLEAR, train=REAL_TRAIN_PATIENTS,
                          size=16)
    gone = made["test"][::3]
    for name in gone:
        (root / "images" / name).unlink()
    listed = len(made["test"])
    want = f"restricted to the {listed - len(gone)} of its {listed} listed images present"
    for sets in (None, ["nih", "nih-expert"]):
        out = tmp_path / f"out-{bool(sets)}"
        path = write_suite(tmp_path / "s.yaml", _suite(root, out, sets, **{
            "dataset.missing": "skip", "seeds": [0]}))
        code, _, err = cli(capsys, "run", path, "--no-progress")
        assert code == 0, err
        code, text, _ = cli(capsys, "leaderboard", str(out))
        assert want in text, text[-2000:]


def test_external_test_set_scored_from_best_checkpoint(real_root, tmp_path, capsys):
    """An external test set (CheXpert, its own files and table: the first rows of the real
    table shipped with torchxrayvision, tiny JPEGs) is scored by each run's best.pt, with the
    stated policy; its block is on the leaderboard."""
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    from mlbench.data.release import shipped_table
    from mlbench.data.testsets import create_test_set
    from mlbench.db import ResultsDB
    from mlbench.driver.testsets import score_external

    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    table = pd.read_csv(shipped_table("chexpert_train.csv.gz"), dtype=str,
                        keep_default_na=False).iloc[:30]
    table.to_csv(root / "train.csv", index=False)
    pixels = np.random.default_rng(5)
    for rel in table["Path"]:
        where = root / rel.split("/", 1)[1]
        where.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.integers(0, 256, (12, 12), dtype=np.uint8)).save(where, "JPEG")
    entry = {"name": "chexpert", "root": str(root), "split": "train", "uncertain": "ones"}
    out = tmp_path / "out"
    path = write_suite(tmp_path / "s.yaml", _suite(real_root, out, ["nih", entry], seeds=[0]))
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 0, err
    ts = create_test_set("chexpert", root, split="train", uncertain="ones")
    with ResultsDB(out, readonly=True) as db:
        runs = db.runs()
        assert db.scored_test_sets() == {"chexpert": {r["id"] for r in runs}}
        for run in runs:
            got = db.test_set_result(run["id"], "chexpert")
            np.testing.assert_array_equal(got["mask"], ts.mask)
            best = out / "checkpoints" / run["id"] / "best.pt"
            with torch.no_grad():
                np.testing.assert_allclose(got["scores"], score_external(ts, run, best),
                                           rtol=1e-5)
            assert "U-Ones" in got["info"]["policy"]
    code, text, _ = cli(capsys, "leaderboard", str(out))
    assert "##### Test set chexpert #####" in text


def test_external_test_set_needs_its_root(real_root, tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", _suite(real_root, tmp_path / "out",
                                                    ["nih", "chexpert"]))
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2 and "give it as a mapping with its root" in one_error(err)
    path = write_suite(tmp_path / "s.yaml", _suite(real_root, tmp_path / "out", [
        "nih", {"name": "chexpert", "root": str(tmp_path / "nowhere")}]))
    code, _, err = cli(capsys, "run", path, "--no-progress")
    assert code == 2 and f"no folder {tmp_path / 'nowhere'}" in one_error(err)
    assert not (tmp_path / "out" / "results.db").exists()


@pytest.mark.parametrize(("test_sets", "message"), [
    (["nih", "nih"], "test set 'nih' is listed twice"),
    ([{"root": "/x"}], "must be a test-set name or a mapping with a `name`"),
    ([], "`eval.test_sets` is empty"),
])
def test_bad_test_set_lists_refused_at_load(tmp_path, test_sets, message):
    from mlbench.suite import SuiteError, load_suite

    def suite(sets):  # CXR14-sim into OUT: nothing is read at load
        return tiny_suite(None, tmp_path / "out", eval={"test_sets": sets})

    with pytest.raises(SuiteError) as err:
        load_suite(suite(test_sets), train_keys=False, env={})
    assert message in str(err.value)
    one = load_suite(suite("nih-expert"), train_keys=False, env={})
    assert one.config["eval"]["test_sets"] == [{"name": "nih-expert"}]
