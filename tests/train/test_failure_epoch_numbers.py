"""The NaN-loss message counts epochs as the logs do, from 1 (issue 24, partial cases): a
run whose loss turns non-finite in its second epoch says "epoch 2 of 3", after the log line
of "epoch 1/3"."""

from __future__ import annotations

import pytest

from mlbench.logs import worker_run
from mlbench.models import build_model
from mlbench.train import TrainConfig, deterministic, fit
from tests.helpers import NanAt

pytestmark = pytest.mark.reliability


def test_the_nan_message_and_the_log_count_epochs_alike(task, loaders, capfd):
    cfg = TrainConfig(epochs=3, nan_check_every=1)
    task_ = {"run": {"id": "r1", "config": {"train": {"epochs": 3, "device": "cpu"}}},
             "log_dir": None}
    with deterministic(0), worker_run(task_) as on_epoch:  # the worker's log lines, as in a run
        model = build_model("test_efficientnet", "linear", num_classes=3)
        train, val = loaders(*task, 0)
        # 6 steps per epoch: step 9 is the 4th step of the second epoch
        res = fit(model, NanAt(9), train, val, cfg, on_epoch_end=on_epoch)
    assert res.status == "failed" and res.failed_step == 9
    logged = [line.partition("]: ")[2] for line in capfd.readouterr().err.splitlines()
              if " epoch " in line]
    assert len(logged) == 1 and logged[0].startswith("run r1 epoch 1/3 "), logged
    assert res.failure == "non-finite training loss at step 9 (epoch 2 of 3)"
