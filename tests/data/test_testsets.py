"""The test-set layer: label maps, label policies, the registry, and the built-in NIH test
sets on a fixture of real image names, patients and labels (the 2020 table, Google's expert
labels and BBox_List_2017, all shipped with torchxrayvision)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlbench.data import FINDINGS, ChestXray14
from mlbench.data.release import shipped_table
from mlbench.data.testsets import (
    LabelMap,
    LabelPolicy,
    TestSet,
    create_test_set,
    get_test_set_info,
    list_test_sets,
)
from mlbench.data.testsets.nih import EXPERT_MAP, read_bbox, read_google_labels

from .conftest import write_real_nih


@pytest.fixture(scope="module")
def real_nih(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-nih")
    return root, write_real_nih(root)


def test_label_map_applies_and_states_its_rules():
    s = np.random.default_rng(0).random((5, 14))
    out = EXPERT_MAP.apply(s)
    f = FINDINGS.index
    np.testing.assert_array_equal(out[:, 0], s[:, f("Pneumothorax")])
    np.testing.assert_array_equal(out[:, 1], np.maximum(s[:, f("Nodule")], s[:, f("Mass")]))
    want = s[:, [f("Consolidation"), f("Pneumonia"), f("Edema"), f("Infiltration")]].max(1)
    np.testing.assert_array_equal(out[:, 2], want)
    lines = EXPERT_MAP.describe()
    assert lines[1].startswith("Nodule or mass <- max(Nodule, Mass)")
    assert any(x.startswith("Fracture: not scored") for x in lines)
    with pytest.raises(ValueError, match=r"model outputs among .*'Lung Lesion'"):
        LabelMap((("x", ("Lung Lesion",)),))
    with pytest.raises(ValueError, match=r"\(N, 14\)"):
        EXPERT_MAP.apply(s[:, :7])


@pytest.mark.parametrize(("uncertain", "blank"), [("ignore", "zeros"), ("ones", "zeros"),
                                                  ("zeros", "ignore"), ("ignore", "ignore")])
def test_label_policy(uncertain, blank):
    nan = np.nan
    v = np.array([[1, 0, -1, nan], [nan, nan, nan, nan], [nan, -1, 0, 1]], float)
    no_finding = np.array([nan, 1.0, nan])
    labels, known = LabelPolicy(uncertain, blank).apply(v, no_finding)
    assert labels.dtype == np.float32 and known.dtype == bool
    # 1 and 0 are kept as they are
    assert labels[0, 0] == 1 and known[0, 0] and labels[0, 1] == 0 and known[0, 1]
    unc = v == -1
    if uncertain == "ignore":
        assert not known[unc].any()
    else:
        assert known[unc].all() and (labels[unc] == (uncertain == "ones")).all()
    blank_cells = np.isnan(v)
    assert (labels[blank_cells] == 0).all()
    if blank == "zeros":
        assert known[blank_cells].all()
    else:  # unknown, except on the No Finding row
        assert known[1].all() and not known[0, 3] and not known[2, 0]
    with pytest.raises(ValueError, match="uncertain"):
        LabelPolicy("maybe")
    with pytest.raises(ValueError, match="blank"):
        LabelPolicy(blank="ones")
    with pytest.raises(ValueError, match=r"\{1, 0, -1, blank\}"):
        LabelPolicy().apply(np.array([[2.0]]))


def test_registry_names_and_errors():
    assert {"nih", "nih-expert", "nih-bbox", "padchest", "chexpert", "mimic-cxr"} <= set(
        list_test_sets())
    assert get_test_set_info("nih-expert").kind == "nih"
    assert get_test_set_info("padchest").kind == "external"
    with pytest.raises(ValueError, match=r"Unknown test set 'nih-experts'.*'nih-expert'"):
        create_test_set("nih-experts", ".")


def test_test_set_checks_its_arrays():
    kw = dict(name="x", source="s", label_map=LabelMap.identity(("Mass",)),
              images=["a", "b"], patients=[1, 2], views=["PA", "PA"], population="p")
    with pytest.raises(ValueError, match=r"labels of shape \(2, 1\)"):
        TestSet(labels=np.zeros((2, 2)), mask=np.ones((2, 2), bool), **kw)
    with pytest.raises(ValueError, match="0 or 1 where known"):
        TestSet(labels=np.array([[0.5], [1]]), mask=np.ones((2, 1), bool), **kw)
    ts = TestSet(labels=np.array([[np.nan], [1]]), mask=np.array([[False], [True]]), **kw)
    assert ts.labels[0, 0] == 0 and ts.images.dtype.kind == "U"


def test_nih_is_the_official_test_split(real_nih):
    root, info = real_nih
    ts = create_test_set("nih", root)
    ds = ChestXray14(root, "test")
    assert list(ts.images) == ds.metadata.image.tolist() and set(ts.images) == set(info["test"])
    np.testing.assert_array_equal(ts.labels, ds.labels)
    assert ts.mask.all() and ts.findings == FINDINGS and ts.population == "nih"
    np.testing.assert_array_equal(ts.patients, ds.metadata.patient)
    s = np.random.default_rng(1).random((len(ds), 14))
    np.testing.assert_array_equal(ts.scores_from_nih(s), s)


def test_nih_expert_holds_the_google_labels_of_the_test_images_present(real_nih):
    root, info = real_nih
    ts = create_test_set("nih-expert", root)
    g = read_google_labels().set_index("image")
    want = [n for n in info["test"] if n in g.index and g.loc[n, "set"] == "test"]
    assert sorted(ts.images) == sorted(want) and len(want) >= 10
    # the train_val patients' google "val" images are not a test set
    assert not set(ts.images) & set(g.index[g["set"] == "val"])
    np.testing.assert_array_equal(ts.labels, g.loc[ts.images, list(ts.findings)].to_numpy())
    assert ts.mask.all() and ts.findings == ("Pneumothorax", "Nodule or mass",
                                             "Airspace opacity")
    ds = ChestXray14(root, "test")
    np.testing.assert_array_equal(ds.metadata.image.to_numpy()[ts.nih_rows], ts.images)
    s = np.random.default_rng(2).random((len(ds), 14))
    np.testing.assert_array_equal(ts.scores_from_nih(s), EXPERT_MAP.apply(s[ts.nih_rows]))
    assert any("of the 1,962 expert-labelled" in n for n in ts.notes)
    assert "Majkowska" in ts.source and "Fracture: not scored" in ts.summary()


def test_nih_bbox_positives_negatives_and_masked(real_nih):
    root, info = real_nih
    ts = create_test_set("nih-bbox", root)
    ds = ChestXray14(root, "test")
    boxes = read_bbox()
    boxed = set(zip(boxes["image"], boxes["finding"], strict=True))
    assert len(ts) == len(ds)
    masked = 0
    for i, name in enumerate(ts.images):
        for k, f in enumerate(ts.findings):
            nih_pos = ds.labels[i, FINDINGS.index(f)] > 0
            if (name, f) in boxed:  # a box: a confirmed positive
                assert ts.mask[i, k] and ts.labels[i, k] == 1
            elif nih_pos:  # NIH says positive, no box: neither
                assert not ts.mask[i, k]
                masked += 1
            else:  # a text-mined negative
                assert ts.mask[i, k] and ts.labels[i, k] == 0
    assert masked > 0 and ts.labels.sum() >= 8
    assert "Infiltration" in ts.findings and "Hernia" not in ts.findings


def test_masked_test_set_metrics_equal_sklearn_on_the_labelled_rows(real_nih):
    root, _ = real_nih
    ts = create_test_set("nih-bbox", root)
    s = np.random.default_rng(3).random((len(ts), 14))
    out = ts.evaluate(s)
    mapped = ts.scores(s)
    for k in range(len(ts.findings)):
        rows = ts.mask[:, k]
        y = ts.labels[rows, k]
        if 0 < y.sum() < len(y):
            assert out["auc"][k] == pytest.approx(roc_auc_score(y, mapped[rows, k]))
        else:
            assert np.isnan(out["auc"][k])


def test_partial_release_restricts_every_nih_test_set_and_says_so(tmp_path):
    root = tmp_path / "partial"
    info = write_real_nih(root)
    g = read_google_labels().set_index("image")
    expert = [n for n in info["test"] if n in g.index and g.loc[n, "set"] == "test"]
    gone = expert[:3] + [n for n in info["test"] if n not in expert][:2]
    for n in gone:
        (root / "images" / n).unlink()
    with pytest.raises(FileNotFoundError, match="missing: skip"):
        create_test_set("nih", root)
    with pytest.warns(UserWarning, match=r"restricted to the \d+ of its \d+ listed images"):
        ts = create_test_set("nih-expert", root, missing="skip")
    assert sorted(ts.images) == sorted(set(expert) - set(gone))
    n_test = len(info["test"])
    assert any(f"restricted to the {n_test - 5} of its {n_test} listed images present" in x
               for x in ts.notes)
    with pytest.warns(UserWarning):
        ds = ChestXray14(root, "test", missing="skip")
    test_patients = {p for p, n in zip(info["patients"], info["names"], strict=True)
                     if n in set(info["test"])}
    assert ds.coverage == {"listed": n_test, "present": n_test - 5,
                           "patients_listed": len(test_patients),
                           "patients_present": len(test_patients)}  # each keeps a film
    bbox = create_test_set("nih-bbox", ds)  # from the split itself: its rows, its notes
    assert len(bbox) == n_test - 5 and bbox.notes[0] == ds.coverage_note()
    assert ChestXray14(root, "train_val").coverage_note() is None


def test_a_prepared_cache_of_a_partial_release_states_the_restriction(tmp_path):
    from mlbench.data import prepare_cache

    root = tmp_path / "partial"
    info = write_real_nih(root)
    for n in info["test"][:2]:
        (root / "images" / n).unlink()
    cache = prepare_cache(root, 8, workers=1, progress=False)
    ds = ChestXray14.from_prepared(cache, "test")  # what a worker opens: no warning there
    n = len(info["test"])
    assert len(ds) == n - 2 and ds.coverage["listed"] == n
    assert ds.coverage_note().startswith(
        f"the official test_list.txt restricted to the {n - 2} of its {n} listed images")
    assert ChestXray14.from_prepared(cache, "train_val").coverage_note() is None


def test_official_test_split_tool_counts(tmp_path, capsys):
    from tools import testset_counts

    root = tmp_path / "r"
    write_real_nih(root)
    assert testset_counts.main(["--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "nih-expert:" in out and "Airspace opacity" in out and "nih-bbox:" in out


def test_shipped_tables_found():
    for name in ("google2019_nih-chest-xray-labels.csv.gz", "BBox_List_2017.csv.gz"):
        assert shipped_table(name).is_file()
    assert len(pd.read_csv(shipped_table("BBox_List_2017.csv.gz"))) == 984
