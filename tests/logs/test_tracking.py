"""Experiment tracking from results.db: a real local MLflow store (sqlite) and real
TensorBoard event files, read back; export idempotent by run id."""

from __future__ import annotations

import pytest

from mlbench.cli import main
from mlbench.db import ResultsDB
from tests.helpers import FINDINGS

from .conftest import finish_run

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")
pytest.importorskip("alembic")

# mlflow 3 with SQLAlchemy 2.1: a deprecation inside mlflow's store, not ours
pytestmark = [pytest.mark.observability,
              pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy")]


def mlflow_runs(uri: str, experiment: str) -> dict:
    """{run name: mlflow Run} of the experiment's active runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} in {uri}"
    found = client.search_runs([exp.experiment_id], max_results=1000)
    return {r.info.run_name: r for r in found}


def tb_scalars(folder) -> dict:
    """{tag: [(step, value)]} from the event files in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def test_export_mlflow_reads_back_and_is_idempotent(fake_out, tmp_path, capsys, monkeypatch):
    from mlflow.tracking import MlflowClient

    out, ids = fake_out
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root would be ./mlruns
    with ResultsDB(out, readonly=True) as db:
        finished = [r for r in db.runs("finished")]
        stored = {r["id"]: db.metrics(r["id"]) for r in finished}
    ckpt = out / "checkpoints" / finished[0]["id"] / "best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")

    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    assert main(["export", "mlflow", str(out), "--uri", uri]) == 0
    assert "5 logged, 0 replaced, 0 unchanged" in capsys.readouterr().out
    got = mlflow_runs(uri, "fake")
    assert set(got) == {r["id"] for r in finished} | {ids["failed"]}
    client = MlflowClient(tracking_uri=uri)
    for r in finished:
        run = got[r["id"]]
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED"
        assert {k: tags[k] for k in ("backbone", "head", "loss", "seed", "mlbench.run_id")} == {
            "backbone": r["backbone"], "head": r["head"], "loss": r["loss"],
            "seed": str(r["seed"]), "mlbench.run_id": r["id"]}
        assert params["train.lr"] == "0.001" and params["train.epochs"] == "3"
        mean = next(m for m in stored[r["id"]] if m["name"] == "mean_auc")
        assert metrics["test/mean_auc"] == pytest.approx(mean["value"])
        assert metrics["test/mean_auc_lo"] == pytest.approx(mean["lo"])
        assert metrics["test/mean_auc_hi"] == pytest.approx(mean["hi"])
        auc0 = next(m for m in stored[r["id"]] if m["name"] == "auc" and m["finding"] == "F0")
        assert metrics["test/auc/F0"] == pytest.approx(auc0["value"])
        assert metrics["test/auc/F0_lo"] == pytest.approx(auc0["lo"])
        hist = client.get_metric_history(run.info.run_id, "train_loss")
        assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == [
            (0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
        assert len(client.get_metric_history(run.info.run_id, f"val_auc/{FINDINGS[13]}")) == 3
    arts = client.list_artifacts(got[finished[0]["id"]].info.run_id, "checkpoints")
    assert [a.path for a in arts] == ["checkpoints/best.pt"]
    assert [p.read_bytes() for p in (tmp_path / "store" / "mlflow-artifacts").rglob("best.pt")
            ] == [b"weights"]  # beside the sqlite store, not in ./mlruns
    assert not (tmp_path / "mlruns").exists()
    assert not client.list_artifacts(got[finished[1]["id"]].info.run_id)
    bad = got[ids["failed"]]
    assert bad.info.status == "FAILED" and bad.data.tags["mlbench.status"] == "failed"
    assert bad.data.tags["mlbench.error"].startswith("FloatingPointError")

    # again: nothing changes; a retried run that now finished replaces its MLflow run
    assert main(["export", "mlflow", str(out), "--uri", uri]) == 0
    assert "0 logged, 0 replaced, 5 unchanged" in capsys.readouterr().out
    with ResultsDB(out) as db:
        db.retry_failed([ids["failed"]])
        run = db.claim([ids["failed"]])
        finish_run(db, run["id"], seed=9)
    assert main(["export", "mlflow", str(out), "--uri", uri]) == 0
    assert "0 logged, 1 replaced, 4 unchanged" in capsys.readouterr().out
    got = mlflow_runs(uri, "fake")
    assert len(got) == 5 and got[ids["failed"]].info.status == "FINISHED"


def test_export_tensorboard_event_files(fake_out, capsys):
    pytest.importorskip("tensorboard")
    out, ids = fake_out
    assert main(["export", "tensorboard", str(out)]) == 0
    assert "5 logged" in capsys.readouterr().out
    with ResultsDB(out, readonly=True) as db:
        finished = db.runs("finished")
        mean = {r["id"]: next(m["value"] for m in db.metrics(r["id"]) if m["name"] == "mean_auc")
                for r in finished}
    assert {p.name for p in (out / "tb").iterdir()} == set(mean) | {ids["failed"]}
    for run_id, value in mean.items():
        sc = tb_scalars(out / "tb" / run_id)
        assert [s for s, _ in sc["train_loss"]] == [0, 1, 2]
        assert [v for _, v in sc["val_mean_auc"]] == pytest.approx([0.5, 0.55, 0.6])
        assert sc["test/mean_auc"] == [(2, pytest.approx(value))]
    assert main(["export", "tensorboard", str(out)]) == 0  # rewritten, not appended
    sc = tb_scalars(out / "tb" / finished[0]["id"])
    assert len(sc["train_loss"]) == 3


def test_test_sets_are_their_own_metric_blocks():
    """A run scored on named test sets: its own split's metrics as before (``test/...``),
    each test set its own block (``test_<name>/...``), and a tag naming them (so that an
    MLflow run logged before the scoring is replaced, not left alone)."""
    from mlbench.logs.tracking import StoredRun

    run = StoredRun(id="r1", suite="s", status="finished", backbone="b", head="h", loss="bce",
                    seed=0, config={}, metrics=[
                        {"name": "mean_auc", "finding": "", "value": 0.7, "lo": 0.6, "hi": 0.8},
                        {"name": "train_seconds", "finding": "", "value": 3.0}],
                    test_sets={"nih-expert": [
                        {"name": "mean_auc", "finding": "", "value": 0.65, "lo": 0.5, "hi": 0.8},
                        {"name": "auc", "finding": "Nodule or mass", "value": 0.6}]})
    got = run.test_metrics()
    assert got["test/mean_auc"] == 0.7 and got["train_seconds"] == 3.0
    assert got["test_nih-expert/mean_auc"] == 0.65 and got["test_nih-expert/mean_auc_lo"] == 0.5
    assert got["test_nih-expert/auc/Nodule or mass"] == 0.6
    assert run.tags["mlbench.test_sets"] == "nih-expert"
    assert "mlbench.test_sets" not in StoredRun(id="r2", suite="s", status="finished",
                                                backbone="b", head="h", loss="bce", seed=0,
                                                config={}).tags


def test_mlflow_run_replaced_once_scored_on_a_test_set(fake_out, tmp_path, capsys, monkeypatch):
    """A run logged before it was scored on a named test set is logged again with the test
    set's block (``test_nih-expert/...``); the others are left alone."""
    import numpy as np

    out, _ = fake_out
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["export", "mlflow", str(out), "--uri", uri]) == 0
    capsys.readouterr()
    with ResultsDB(out) as db:
        rid = db.runs("finished")[0]["id"]
        db.store_test_set(rid, "nih-expert", findings=["Airspace opacity"],
                          records=[("mean_auc", "", 0.66, 0.5, 0.8)],
                          scores=np.linspace(0, 1, 6)[:, None], targets=np.eye(6, 1),
                          mask=np.ones((6, 1), bool), image_ids=[str(i) for i in range(6)],
                          patient_ids=list(range(6)), info={"name": "nih-expert"})
    assert main(["export", "mlflow", str(out), "--uri", uri]) == 0
    assert "0 logged, 1 replaced, 4 unchanged" in capsys.readouterr().out
    run = mlflow_runs(uri, "fake")[rid]
    assert run.data.metrics["test_nih-expert/mean_auc"] == pytest.approx(0.66)
    assert run.data.metrics["test_nih-expert/mean_auc_hi"] == pytest.approx(0.8)
    assert "test/mean_auc" in run.data.metrics and run.data.tags["mlbench.test_sets"] == "nih-expert"
