"""Experiment tracking (optional): MLflow and TensorBoard, fed from ``results.db``.

Only the driver talks to a tracker (so it works whatever executor computed the run): after it
stores a run's result it calls :meth:`Tracker.after_store`, which reads the stored run back
(:func:`load_stored`) and hands it to each sink. ``mlbench export mlflow|tensorboard OUT``
does the same for every stored run of an existing results.db (:func:`export`): one code path,
and idempotent by run id (an MLflow run tagged with the same ``mlbench.run_id``, status and
finish time is left alone; one that differs is replaced; a run's TensorBoard folder is
rewritten).

What a run becomes:
    MLflow      one experiment per suite (``tracking.experiment``, default the suite name);
                one MLflow run per mlbench run, named by its id; params: the resolved
                config, flattened (``train.lr``, ``model.pretrained``...); tags:
                ``backbone``, ``head``, ``loss``, ``seed``, ``mlbench.run_id``,
                ``mlbench.suite``, ``mlbench.status`` (and ``mlbench.error``); metrics: every
                numeric value of each epoch's history row at ``step=epoch``
                (``train_loss``, ``val_mean_auc``, ``val_auc/<finding>``...), the test
                metrics (``test/mean_auc`` with ``test/mean_auc_lo``/``_hi``,
                ``test/auc/<finding>`` with its CI, ``test/map``...), each named test set
                as its own block (``test_nih-expert/mean_auc``...; logged again once the
                run is scored on a test set added later); artifact: the best
                checkpoint (``checkpoints/best.pt``). Default store: ``sqlite:///OUT/mlflow.db``
                with artifacts in ``OUT/mlflow-artifacts``.
    TensorBoard event files in ``OUT/tb/<run id>/``: the same epoch scalars at step=epoch,
                the test metrics at the last epoch, the config as text.

Suite section (all optional; CLI: ``--mlflow``, ``--mlflow-uri URI``, ``--tensorboard``)::

    tracking:
      mlflow: false          # log to MLflow
      mlflow_uri: null       # default sqlite:///OUT/mlflow.db
      experiment: null       # default: the suite's name
      tensorboard: false     # event files under OUT/tb/<run id>
      artifacts: true        # the best checkpoint as an MLflow artifact

Install: ``pip install 'mlbench[tracking]'`` (mlflow-skinny, sqlalchemy, alembic,
tensorboard).
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mlbench.tracking")

DEFAULTS = {"mlflow": False, "mlflow_uri": None, "experiment": None, "tensorboard": False,
            "artifacts": True}
RUN_ID_TAG = "mlbench.run_id"
TB_DIR = "tb"


class TrackingError(RuntimeError):
    """A tracker that cannot be used (package missing, store unreachable)."""


# ------------------------------------------------------------------ a stored run
@dataclass
class StoredRun:
    """One run as results.db holds it (what every sink logs)."""

    id: str
    suite: str
    status: str
    backbone: str
    head: str
    loss: str
    seed: int
    config: dict
    started: float | None = None
    finished: float | None = None
    device: str | None = None
    error: str | None = None
    epochs: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    checkpoint: Path | None = None
    test_sets: dict[str, list[dict]] = field(default_factory=dict)  # name -> metric rows

    @property
    def tags(self) -> dict[str, str]:
        tags = {"backbone": self.backbone, "head": self.head, "loss": self.loss,
                "seed": str(self.seed), RUN_ID_TAG: self.id, "mlbench.suite": self.suite,
                "mlbench.status": self.status}
        if self.device:
            tags["mlbench.device"] = self.device
        if self.error:
            tags["mlbench.error"] = (self.error.strip().splitlines() or [""])[0][:500]
        if self.test_sets:  # the named test sets it was scored on (eval.test_sets)
            tags["mlbench.test_sets"] = ",".join(sorted(self.test_sets))
        return tags

    def params(self) -> dict[str, str]:
        """The resolved config flattened to ``a.b.c -> str`` (lists and the loss spec as
        JSON)."""
        out: dict[str, str] = {}

        def walk(node, prefix):
            if isinstance(node, dict) and node and prefix != "loss":
                for k in sorted(node):
                    walk(node[k], f"{prefix}.{k}" if prefix else str(k))
                return
            out[prefix] = node if isinstance(node, str) else json.dumps(node, sort_keys=True)

        walk(self.config, "")
        return out

    def epoch_metrics(self) -> list[tuple[int, dict[str, float]]]:
        """``[(epoch, {name: value})]``: the numeric values of each history row (per-class
        lists as ``name/<finding>``)."""
        rows = []
        for i, row in enumerate(self.epochs):
            step = int(row.get("epoch", i))
            values = {}
            for key, value in row.items():
                if key == "epoch":
                    continue
                if isinstance(value, bool):
                    values[key] = float(value)
                elif isinstance(value, (int, float)):
                    values[key] = float(value)
                elif isinstance(value, list) and len(value) == len(self.findings) and all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    for name, v in zip(self.findings, value, strict=True):
                        values[f"{key}/{_safe(name)}"] = float(v)
            rows.append((step, {k: v for k, v in values.items() if _finite(v)}))
        return rows

    def test_metrics(self) -> dict[str, float]:
        """``test/<name>`` (run level) and ``test/<name>/<finding>``, with ``_lo``/``_hi``
        for the CIs; the run-level values that are not test metrics: ``best_val_mean_auc``
        (the kept epoch's), ``train_seconds``, ``train_images_per_s``. Each named test set
        of ``eval.test_sets`` beyond the run's own split its own block: ``test_<name>/<name>``
        and ``test_<name>/<name>/<finding>`` (``test_nih-expert/mean_auc``)."""
        out = {}
        blocks = [("test", self.metrics)] + [(f"test_{_safe(n)}", rows)
                                             for n, rows in sorted(self.test_sets.items())]
        for prefix, rows in blocks:
            for m in rows:
                name, finding = m["name"], m.get("finding") or ""
                if name in _RUN_LEVEL:
                    if prefix != "test":
                        continue
                    key = _RUN_LEVEL[name]
                else:
                    key = f"{prefix}/{name}" + (f"/{_safe(finding)}" if finding else "")
                for suffix, col in (("", "value"), ("_lo", "lo"), ("_hi", "hi")):
                    v = m.get(col)
                    if v is not None and _finite(v):
                        out[key + suffix] = float(v)
        return out

    @property
    def last_epoch(self) -> int:
        return max((int(r.get("epoch", i)) for i, r in enumerate(self.epochs)), default=0)


_RUN_LEVEL = {"val_mean_auc": "best_val_mean_auc", "train_seconds": "train_seconds",
              "train_images_per_s": "train_images_per_s"}


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _safe(name: str) -> str:
    """A metric-name-safe finding (MLflow allows letters, digits, ``_-. /``)."""
    return "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in str(name))


def load_stored(db, run_id: str, checkpoint_dir: str | Path | None = None) -> StoredRun:
    """A run read back from an open ``ResultsDB`` (read-only or the driver's)."""
    r = db.get_run(run_id)
    if r is None:
        raise KeyError(f"run {run_id} is not in {db.path}")
    ckpt = None
    if checkpoint_dir is not None:
        best = Path(checkpoint_dir) / run_id / "best.pt"
        ckpt = best if best.is_file() else None
    return StoredRun(
        id=r["id"], suite=r["suite"], status=r["status"], backbone=r["backbone"],
        head=r["head"], loss=r["loss"], seed=int(r["seed"]), config=r["config"],
        started=r.get("started"), finished=r.get("finished"), device=r.get("device"),
        error=r.get("error"), epochs=db.epochs(run_id), metrics=db.metrics(run_id),
        findings=list(db.get_meta("findings") or []), checkpoint=ckpt,
        test_sets={name: db.test_set_metrics(name, run_id)
                   for name, ids in db.scored_test_sets().items() if run_id in ids})


# ------------------------------------------------------------------ sinks
class MLflowSink:
    """Logs stored runs to an MLflow tracking store (``MlflowClient``, no global state).

    Args:
        uri: tracking URI (``sqlite:///...``, ``http://...``); ``mlflow.set_tracking_uri`` is
            set to it too.
        experiment: experiment name (one per suite).
        artifact_location: where a new experiment keeps artifacts (default: the store's).
        artifacts: log the best checkpoint.
    """

    name = "mlflow"

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None,
                 artifacts: bool = True):
        try:
            import mlflow
            from mlflow.tracking import MlflowClient
        except ModuleNotFoundError:
            raise TrackingError("MLflow tracking needs mlflow: pip install "
                                "'mlbench[tracking]' (mlflow-skinny, sqlalchemy, alembic)"
                                ) from None
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        mlflow.set_tracking_uri(uri)
        self.uri, self.artifacts = uri, artifacts
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            self.experiment_id = self.client.create_experiment(
                experiment, artifact_location=artifact_location)
        else:
            if exp.lifecycle_stage == "deleted":
                self.client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id

    def _existing(self, run_id: str) -> list:
        return self.client.search_runs([self.experiment_id],
                                       filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
                                       max_results=10)

    def log(self, run: StoredRun) -> str:
        """Log ``run``; returns "logged", "replaced" or "unchanged" (already there)."""
        from mlflow.entities import Metric, Param, RunTag

        old = self._existing(run.id)
        stamp = _ms(run.finished)
        same = [o for o in old
                if o.data.tags.get("mlbench.status") == run.status
                and o.data.tags.get("mlbench.finished") == str(stamp)
                and o.data.tags.get("mlbench.test_sets", "") == run.tags.get("mlbench.test_sets",
                                                                            "")
                and o.info.status in ("FINISHED", "FAILED")]
        if same and len(old) == 1:
            return "unchanged"
        for o in old:
            self.client.delete_run(o.info.run_id)
        tags = {**run.tags, "mlbench.finished": str(stamp)}
        mrun = self.client.create_run(self.experiment_id, start_time=_ms(run.started),
                                      tags=tags, run_name=run.id)
        rid = mrun.info.run_id
        try:
            params = [Param(k[:250], str(v)[:6000]) for k, v in run.params().items()]
            metrics = [Metric(k, v, _ms(run.started) or 0, step)
                       for step, values in run.epoch_metrics() for k, v in values.items()]
            metrics += [Metric(k, v, stamp or 0, run.last_epoch)
                        for k, v in run.test_metrics().items()]
            for chunk in _chunks(params, 100):
                self.client.log_batch(rid, params=chunk)
            for chunk in _chunks(metrics, 1000):
                self.client.log_batch(rid, metrics=chunk)
            self.client.log_batch(rid, tags=[RunTag("mlflow.note.content",
                                                    f"mlbench run {run.id} of suite {run.suite}")])
            if self.artifacts and run.checkpoint is not None:
                self.client.log_artifact(rid, str(run.checkpoint), artifact_path="checkpoints")
        except BaseException:
            self.client.set_terminated(rid, "FAILED")
            raise
        self.client.set_terminated(rid, "FINISHED" if run.status == "finished" else "FAILED",
                                   end_time=stamp)
        return "replaced" if old else "logged"


class TensorBoardSink:
    """Writes a stored run's event files to ``logdir/<run id>/`` (rewritten each time)."""

    name = "tensorboard"

    def __init__(self, logdir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except (ModuleNotFoundError, ImportError):
            raise TrackingError("TensorBoard tracking needs tensorboard: pip install "
                                "'mlbench[tracking]'") from None
        self.logdir = Path(logdir)

    def log(self, run: StoredRun) -> str:
        from torch.utils.tensorboard import SummaryWriter

        folder = self.logdir / run.id
        existed = folder.exists()
        if existed:
            shutil.rmtree(folder)
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for step, values in run.epoch_metrics():
                for k, v in values.items():
                    writer.add_scalar(k, v, step, walltime=run.started)
            for k, v in run.test_metrics().items():
                writer.add_scalar(k, v, run.last_epoch, walltime=run.finished)
            text = "\n".join(f"    {k}: {v}" for k, v in {**run.tags, **run.params()}.items())
            writer.add_text("config", text, 0)
        finally:
            writer.close()
        return "replaced" if existed else "logged"


def _ms(t: float | None) -> int | None:
    return None if t is None else int(round(t * 1000))


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


# ------------------------------------------------------------------ the tracker
def default_mlflow_uri(out: str | Path) -> str:
    return "sqlite:///" + str((Path(out) / "mlflow.db").resolve())


def resolve(section: dict | None) -> dict:
    """A suite's ``tracking`` section with the defaults filled in."""
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in (section or {}).items() if v is not None})
    if cfg.get("mlflow_uri"):
        cfg["mlflow"] = True
    return cfg


def enabled(section: dict | None) -> bool:
    cfg = resolve(section)
    return bool(cfg["mlflow"] or cfg["tensorboard"])


class Tracker:
    """The sinks a suite asks for, fed from results.db.

    Args:
        out: output folder (results.db, OUT/mlflow.db, OUT/tb).
        section: the suite's ``tracking`` section.
        suite: the suite's name (the default experiment).
        checkpoint_dir: where ``<run id>/best.pt`` is (default OUT/checkpoints).
        sinks: which ones (default: those the section turns on).

    Raises:
        TrackingError: a sink's package is missing.
    """

    def __init__(self, out: str | Path, section: dict | None, suite: str,
                 checkpoint_dir: str | Path | None = None, sinks: tuple[str, ...] | None = None):
        self.out = Path(out)
        cfg = resolve(section)
        self.cfg = cfg
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else self.out / "checkpoints"
        wanted = sinks if sinks is not None else tuple(
            n for n in ("mlflow", "tensorboard") if cfg[n])
        self.sinks = []
        if "mlflow" in wanted:
            uri = cfg["mlflow_uri"] or default_mlflow_uri(self.out)
            where = None  # a tracking server keeps its own artifacts
            if uri.startswith("sqlite:///"):  # a local store: artifacts beside it, not ./mlruns
                db_file = Path(uri[len("sqlite:///"):].split("?")[0])
                where = (db_file.parent / "mlflow-artifacts").resolve().as_uri()
            self.sinks.append(MLflowSink(uri, cfg["experiment"] or suite,
                                         artifact_location=where, artifacts=cfg["artifacts"]))
        if "tensorboard" in wanted:
            self.sinks.append(TensorBoardSink(self.out / TB_DIR))

    def __bool__(self) -> bool:
        return bool(self.sinks)

    def log_run(self, db, run_id: str) -> dict[str, str]:
        """Log one stored run to every sink; ``{sink: what happened}``."""
        run = load_stored(db, run_id, self.checkpoint_dir)
        return {s.name: s.log(run) for s in self.sinks}

    def after_store(self, db, run_id: str) -> None:
        """The driver's hook after it stored a run: log it; a tracker error is a warning
        (the result is safe in results.db; ``mlbench export`` fills the tracker later)."""
        try:
            self.log_run(db, run_id)
        except Exception as exc:  # a tracker outage must not stop the study
            log.warning("tracking of run %s failed (%s: %s); fill it in later with "
                        "`python -m mlbench export %s %s`", run_id, type(exc).__name__, exc,
                        "|".join(s.name for s in self.sinks), shlex.quote(str(self.out)))


def make_tracker(suite, out: str | Path | None = None,
                 checkpoint_dir: str | Path | None = None) -> Tracker | None:
    """The tracker of a loaded suite (None when its ``tracking`` section turns nothing on)."""
    section = suite.config.get("tracking")
    if not enabled(section):
        return None
    return Tracker(out or suite.output, section, suite.name, checkpoint_dir)


def export(out: str | Path, sink: str, *, uri: str | None = None,
           experiment: str | None = None, checkpoint_dir: str | Path | None = None,
           artifacts: bool = True, statuses: tuple[str, ...] = ("finished", "failed")
           ) -> dict[str, int]:
    """Log every stored run of ``OUT/results.db`` (read-only) with ``sink`` ("mlflow" or
    "tensorboard"); returns counts of "logged", "replaced", "unchanged"."""
    from mlbench.db import ResultsDB

    out = Path(out)
    counts = {"logged": 0, "replaced": 0, "unchanged": 0}
    with ResultsDB(out, readonly=True) as db:
        suite = db.get_meta("suite") or out.name
        section = {"mlflow": sink == "mlflow", "tensorboard": sink == "tensorboard",
                   "mlflow_uri": uri, "experiment": experiment, "artifacts": artifacts}
        tracker = Tracker(out, section, suite, checkpoint_dir, sinks=(sink,))
        for r in db.runs():
            if r["status"] not in statuses:
                continue
            for what in tracker.log_run(db, r["id"]).values():
                counts[what] += 1
    return counts
