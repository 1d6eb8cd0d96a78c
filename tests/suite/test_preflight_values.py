"""Values that pass a type check but fail every run are refused at preflight in one line,
before anything is written: a learning rate that is not a finite positive number, a weights
file that is a pickle of Python objects or no checkpoint at all (issue 24, partial cases)."""

from __future__ import annotations

import pickle

import pytest
import torch

from tests.helpers import cli, one_error, tiny_suite, write_suite

pytestmark = pytest.mark.reliability


class Opaque:  # a Python object: what a weights-only load refuses
    pass


@pytest.fixture
def suite(tmp_path):
    return write_suite(tmp_path / "s.yaml", tiny_suite(None, tmp_path / "out"))


@pytest.mark.parametrize("value, says", [
    (".inf", "`train.lr`: inf is not a finite number; give a finite value (e.g. --set "
             "train.lr=1e-3)"),
    ("-.inf", "`train.lr`: -inf is not a finite number"),
    (".nan", "`train.lr`: nan is not a finite number"),
    ("-0.1", "`train`: Expected `lr` > 0 but got -0.1"),
    ("0", "`train`: Expected `lr` > 0 but got 0"),
])
def test_a_learning_rate_that_is_not_finite_and_positive(suite, tmp_path, capsys, value, says):
    code, _, err = cli(capsys, "run", suite, "--set", f"train.lr={value}", "--no-progress")
    assert code == 2
    assert one_error(err).startswith(f"error: {says}"), err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_other_non_finite_train_numbers_and_tuned_settings(tmp_path, capsys):
    path = write_suite(tmp_path / "s.yaml", tiny_suite(None, tmp_path / "out"))
    code, _, err = cli(capsys, "run", path, "--set", "train.weight_decay=.inf")
    assert code == 2 and "`train.weight_decay`: inf is not a finite number" in one_error(err)
    tuned = write_suite(tmp_path / "t.yaml", tiny_suite(None, tmp_path / "out", **{
        "grid.loss": ["bce"], "tune": {"train": {"lr": [1e-3, float("inf")]}}}))
    code, _, err = cli(capsys, "run", tuned)
    line = one_error(err)
    assert code == 2 and "`train.lr`: inf is not a finite number" in line, line
    assert not (tmp_path / "out").exists()


def test_a_pickled_weights_file_is_refused_at_preflight(suite, tmp_path, capsys):
    torch.save({"model": Opaque()}, tmp_path / "objects.pt")  # torch.save of Python objects
    with open(tmp_path / "plain.pkl", "wb") as fh:
        pickle.dump({"weights": Opaque()}, fh)
    for name in ("objects.pt", "plain.pkl"):
        weights = tmp_path / name
        code, _, err = cli(capsys, "run", suite, "--set", f"model.weights={weights}")
        line = one_error(err)
        assert code == 2
        assert line.startswith(f"error: `model.weights`: {weights} holds pickled Python "
                               "objects, not only tensors"), line
        assert "torch.save(model.state_dict(), FILE)" in line
        assert "weights_only=False" not in err and "UserWarning" not in err
    assert not (tmp_path / "out").exists()


def test_a_weights_file_that_is_no_checkpoint_is_refused(suite, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"hello world" * 10)
    code, _, err = cli(capsys, "run", suite, "--set", f"model.weights={junk}")
    line = one_error(err)
    assert code == 2 and line.startswith(
        f"error: `model.weights`: {junk} is not a PyTorch checkpoint torch can read"), line
    code, _, err = cli(capsys, "run", suite, "--set", f"model.weights={tmp_path / 'no.pt'}")
    assert code == 2 and "`model.weights`: file not found" in one_error(err)


def test_a_state_dict_passes(tmp_path):
    from mlbench.suite.checks import check_weights_file

    torch.save({"backbone.w": torch.zeros(2), "epoch": 3}, tmp_path / "ok.pt")
    check_weights_file(tmp_path / "ok.pt")  # no error
