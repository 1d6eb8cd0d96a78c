"""Suite loading: interpolation, overrides, strict validation, stable ids, filters."""

from __future__ import annotations

import copy

import pytest

from mlbench.suite import (
    SuiteError,
    describe_runs,
    filter_runs,
    interpolate,
    load_suite,
    parse_only,
    run_id,
)
from tests.helpers import EIGHT_RUNS, tiny_suite


def eight_runs(tmp_path, **changes) -> dict:
    """The 8-run tiny suite (resnet10t x 2 heads x 2 losses x 2 seeds) into tmp_path/out."""
    return tiny_suite(None, tmp_path / "out", EIGHT_RUNS, **changes)


def load(d, **kw):
    return load_suite(d, env={}, **kw)


def test_grid_expands_cells_times_seeds(tmp_path):
    suite = load(eight_runs(tmp_path))
    assert len(suite.runs) == 2 * 2 * 2
    assert {(r.head, r.loss, r.seed) for r in suite.runs} == {
        (h, loss, s) for h in ("linear", "bilinear") for loss in ("bce", "bce+0.1*msml") for s in (0, 1)
    }
    assert len({r.id for r in suite.runs}) == 8
    # resolved config: defaults filled in and stored with the run
    cfg = suite.runs[0].config
    assert cfg["train"]["optimizer"] == "adamw" and cfg["dataset"]["view"] == "all"


def test_interpolation_default_env_and_typed():
    tree = {"a": "${X:-/data/cxr}", "b": "${N:-3}", "c": ["p/${X:-d}/q"]}
    assert interpolate(tree, {}) == {"a": "/data/cxr", "b": 3, "c": ["p/d/q"]}
    assert interpolate(tree, {"X": "/mnt", "N": "7"}) == {"a": "/mnt", "b": 7, "c": ["p//mnt/q"]}
    with pytest.raises(SuiteError, match=r"`dataset.root`.*NOPE"):
        interpolate({"dataset": {"root": "${NOPE}"}}, {})


def test_interpolation_in_suite(tmp_path):
    d = eight_runs(tmp_path, output="${OUTDIR:-" + str(tmp_path / "dflt") + "}")
    d["train"]["epochs"] = "${EPOCHS:-2}"
    suite = load_suite(d, env={"EPOCHS": "5"})
    assert suite.config["train"]["epochs"] == 5
    assert suite.output == tmp_path / "dflt"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (["train.lrr=0.1"], r"unknown key `train.lrr`.*'lr'"),
        (["dataset.sim.imgs=3"], r"unknown key `dataset.sim.imgs`.*'images'"),
        (["bogus=1"], r"unknown key `bogus`.*'grid'"),
        (["train.epochs=two"], r"`train.epochs` must be int.*'two'"),
        (["train.augment=3"], r"`train.augment` must be bool"),
        (["dataset.view=LL"], r"`dataset.view` must be one of \['all', 'PA', 'AP'\]"),
        (["seeds=[0, x]"], r"`seeds\[1\]` must be int"),
        (["grid.loss=[]"], r"`grid.loss` is empty"),
        # accepted before and failing later per run, or a bare TypeError without the key
        (["train.grad_clip=abc"], r"`train.grad_clip` must be float or int or null, got 'abc'"),
        (["train.warmup_steps=x"], r"`train.warmup_steps` must be int or null, got 'x'"),
        (["train.max_steps_per_epoch=1.5"], r"`train.max_steps_per_epoch` must be int or null"),
        (["train.batch_size=0"], r"`train.batch_size` must be >= 1, got 0"),
        (["train.eval_batch_size=-4"], r"`train.eval_batch_size` must be >= 1, got -4"),
        (["train.num_workers=-1"], r"`train.num_workers` must be >= 0, got -1"),
        (["eval.bootstrap=-1"], r"`eval.bootstrap` must be >= 0, got -1"),
        (["dataset.image_size=0"], r"`dataset.image_size` must be >= 8, got 0"),
        (["dataset.sim.images=0"], r"`dataset.sim.images` must be >= 1, got 0"),
        (["dataset.sim.size=3"], r"`dataset.sim.size` must be >= 16, got 3"),
        (["workers=0"], r"`workers` must be >= 1, got 0"),
        (["model.in_chans=2"], r"`model.in_chans` must be one of \[1, 3\], got 2"),
    ],
)
def test_malformed_suites_name_the_key(tmp_path, change, needle):
    with pytest.raises(SuiteError, match=needle):
        load(eight_runs(tmp_path), overrides=change)


def test_missing_required_and_bad_yaml(tmp_path):
    d = eight_runs(tmp_path)
    del d["grid"]["backbone"]
    with pytest.raises(SuiteError, match="missing required key `grid.backbone`"):
        load(d)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load(bad)
    with pytest.raises(SuiteError, match="suite file not found"):
        load(tmp_path / "nope.yaml")


def test_registry_names_checked(tmp_path):
    from mlbench.suite import check_names

    for grid_change, needle in [
        ({"loss": ["bce", "msmlx"]}, r"`grid.loss\[1\]`.*msmlx.*bce"),
        ({"head": ["linear", "trilinear"]}, r"`grid.head\[1\]`.*trilinear.*bilinear"),
        ({"backbone": ["resnet10tt"]}, r"`grid.backbone\[0\]`.*resnet10t"),
    ]:
        d = eight_runs(tmp_path)
        d["grid"].update(grid_change)
        with pytest.raises(SuiteError, match=needle):
            check_names(load(d))
    with pytest.raises(SuiteError, match="`train`.*optimizer"):
        check_names(load(eight_runs(tmp_path), overrides=["train.optimizer=adamx"]))
    # a head option no head of the grid takes: one error at load, not a failure per run
    with pytest.raises(SuiteError, match=r"`model.head_kwargs`.*'dimm'.*'linear'"):
        check_names(load(eight_runs(tmp_path), overrides=["model.head_kwargs={dimm: 8}"]))
    with pytest.raises(SuiteError, match=r"`model.weights`.*not found.*nope.pt"):
        check_names(load(eight_runs(tmp_path), overrides=[f"model.weights={tmp_path}/nope.pt"]))


def test_overrides_yaml_parsed(tmp_path):
    suite = load(eight_runs(tmp_path), overrides=["train.epochs=3", "seeds=[4]", "train.lr=2e-3",
                                                   "grid.loss=[zlpr]"])
    assert suite.config["train"]["epochs"] == 3 and suite.config["train"]["lr"] == 2e-3
    assert {r.seed for r in suite.runs} == {4} and {r.loss for r in suite.runs} == {"zlpr"}


def test_run_ids_stable_and_sensitive(tmp_path):
    a = load(eight_runs(tmp_path))
    b = load(eight_runs(tmp_path))
    assert [r.id for r in a.runs] == [r.id for r in b.runs]
    # same resolved config reached by other means -> same id
    d = eight_runs(tmp_path)
    d["grid"]["loss"] = ["bce", "bce + 0.1 * msml"]
    assert [r.id for r in load(d).runs] == [r.id for r in a.runs]
    # any change -> a different id
    for change in (["train.lr=0.002"], ["dataset.image_size=48"], ["model.pretrained=true"],
                   ["dataset.sim.seed=1"], ["eval.bootstrap=30"]):
        c = load(eight_runs(tmp_path), overrides=change)
        assert not {r.id for r in c.runs} & {r.id for r in a.runs}, change
    # an integer written for a float setting is the same config (lr: 1 == lr: 1.0)
    f1 = load(eight_runs(tmp_path), overrides=["train.lr=1", "train.warmup_epochs=1"])
    f2 = load(eight_runs(tmp_path), overrides=["train.lr=1.0", "train.warmup_epochs=1.0"])
    assert [r.id for r in f1.runs] == [r.id for r in f2.runs]
    assert isinstance(f1.config["train"]["lr"], float)
    # nor does where the prepared cache is kept
    g = load(eight_runs(tmp_path), overrides=[f"dataset.cache_dir={tmp_path / 'cache'}"])
    assert [r.id for r in g.runs] == [r.id for r in a.runs]
    # the output folder and suite name do not enter the id (same experiment)
    e = load(eight_runs(tmp_path, name="other", output=str(tmp_path / "elsewhere")))
    assert [r.id for r in e.runs] == [r.id for r in a.runs]
    cfg = copy.deepcopy(a.runs[0].config)
    assert run_id(cfg) == a.runs[0].id
    cfg["seed"] = 99
    assert run_id(cfg) != a.runs[0].id


def test_only_filters_and_errors(tmp_path):
    suite = load(eight_runs(tmp_path))
    kept = filter_runs(suite.runs, parse_only(["loss=bce+0.1*msml,head=linear"]))
    assert {(r.loss, r.head) for r in kept} == {("bce+0.1*msml", "linear")} and len(kept) == 2
    kept = filter_runs(suite.runs, parse_only(["loss=bce,bce+0.1*msml", "seed=1"]))
    assert len(kept) == 4 and {r.seed for r in kept} == {1}
    with pytest.raises(SuiteError, match=r"unknown key 'los'.*'loss'"):
        parse_only(["los=bce"])
    with pytest.raises(SuiteError, match=r"loss=asl matches no run.*'bce'"):
        filter_runs(suite.runs, parse_only(["loss=asl"]))


def test_only_selects_a_mapping_loss_whose_label_has_commas(tmp_path):
    d = eight_runs(tmp_path)
    d["grid"]["loss"] = ["bce", {"name": "asl", "gamma_neg": 2, "gamma_pos": 0}]
    suite = load(d)
    label = "asl(gamma_neg=2,gamma_pos=0)"
    assert parse_only([f"loss={label},bce"]) == {"loss": [label, "bce"]}
    kept = filter_runs(suite.runs, parse_only([f"loss={label}"]))
    assert {r.loss for r in kept} == {label} and len(kept) == 4


def test_mapping_form_loss_and_dry_run_table(tmp_path):
    d = eight_runs(tmp_path)
    d["grid"]["loss"] = [{"name": "asl", "gamma_neg": 2}, [{"name": "bce"}, {"name": "msml", "weight": 0.1}]]
    suite = load(d)
    assert {r.loss for r in suite.runs} == {"asl(gamma_neg=2)", "bce+0.1*msml"}
    text = describe_runs(suite.runs, {suite.runs[0].id: "finished"})
    assert all(r.id in text for r in suite.runs)
    assert "finished" in text and "asl(gamma_neg=2)" in text
