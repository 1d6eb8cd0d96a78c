"""Execution options written once (mlbench.execution): the suite schema, the run flags and
the executors derive from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbench.cli import build_parser
from mlbench.driver import plan
from mlbench.execution import OPTIONS, SlurmOptions
from mlbench.suite import TOP, load_suite

CLUSTER = TOP["cluster"]


def _suite(tmp_path, **cluster):
    cfg = {"name": "t", "dataset": {"root": str(tmp_path / "data")},
           "grid": {"backbone": ["test_resnet"], "loss": ["bce"]},
           "train": {"device": "cpu"}, "output": str(tmp_path / "out"), "cluster": cluster}
    return load_suite(cfg, env={})


def test_each_option_has_one_default_read_by_the_schema_and_the_flags(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    args = vars(build_parser().parse_args(["run", "s.yaml"]))
    for key, option in OPTIONS.items():
        schema = TOP if option.top else CLUSTER
        assert schema[key].default == option.default, key
        assert args[key] is None and option.flag in shown, key  # None: the suite's value
        if option.default is not None:
            assert f"{option.flag} " in shown and f"(default {option.default})" in shown, key
    assert set(CLUSTER) == {k for k, o in OPTIONS.items() if not o.top}
    assert OPTIONS["array_parallelism"].default == SlurmOptions().array_parallelism == 16


def test_slurm_folder_and_cluster_are_real_options(tmp_path):
    suite = _suite(tmp_path, executor="slurm", slurm_cluster="local")
    ex = plan.make_plan(suite, plan.resolve(suite)).executor
    assert ex.name == "slurm" and ex.cluster == "local"
    assert ex.folder == tmp_path / "out" / "slurm"  # the default
    args = build_parser().parse_args(["run", "s.yaml", "--slurm-folder", "/x/jobs",
                                      "--slurm-cluster", "debug", "--time-min", "5"])
    given = {key: getattr(args, key) for key in OPTIONS}
    ex = plan.make_plan(suite, plan.resolve(suite, **given)).executor
    assert (ex.folder, ex.cluster, ex.options.time_min) == (Path("/x/jobs"), "debug", 5)
    assert ex.options.array_parallelism == 16


def test_a_bad_option_is_one_line_naming_its_flag(tmp_path):
    suite = _suite(tmp_path)
    with pytest.raises(ValueError, match=r"^--time-min must be >= 1, got 0$"):
        plan.resolve(suite, executor="slurm", time_min=0)
    with pytest.raises(ValueError, match=r"^--slurm-cluster must be one of"):
        plan.resolve(suite, executor="slurm", slurm_cluster="nope")
    with pytest.raises(ValueError, match=r"^--executor must be one of \['local', 'ray', 'slurm'\]"):
        plan.resolve(suite, executor="mars")
    with pytest.raises(TypeError, match=r"unknown execution option\(s\) \['slurm_folders'\]"):
        plan.resolve(suite, slurm_folders="x")
    with pytest.raises(Exception, match=r"`cluster.slurm_cluster` must be one of"):
        _suite(tmp_path, slurm_cluster="nope")
