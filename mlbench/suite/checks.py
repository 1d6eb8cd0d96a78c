"""Preflight checks of a loaded suite, before any run starts.

``data_problem`` and ``sim_root_problem`` look at the dataset folder only (no torch, no
decoding), so a missing dataset is reported at once; ``check_names`` checks backbone, head
and loss names against their registries (imports torch), the only source of valid names.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from mlbench.layout import LABEL_FILES, NIH_URL, SIM_MARKER, SPLIT_FILES
from mlbench.suite.grid import backbone_weights, loss_label, normalise_loss, training_labels
from mlbench.suite.load import Suite
from mlbench.suite.schema import SuiteError, as_list


def check_names(suite: Suite) -> None:
    """Check loss specs and head names against their registries (imports torch).

    Raises:
        SuiteError: names the grid entry and lists the valid names.
    """
    import losses
    from mlbench.models import check_backbone, create_head, list_heads
    from mlbench.train import TrainConfig

    for i, name in enumerate(as_list(suite.config["grid"]["backbone"])):
        try:
            check_backbone(name)
        except ValueError as exc:
            raise SuiteError(f"`grid.backbone[{i}]`: {exc}") from None
    _check_finite(suite.config["train"], "`train")
    try:
        TrainConfig.from_dict(suite.config["train"], ignore_unknown=True)
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"`train`: {exc}") from None
    check_weights(suite)
    heads = list_heads()
    head_kwargs = suite.config["model"]["head_kwargs"] or {}
    for i, head in enumerate(as_list(suite.config["grid"]["head"])):
        if head not in heads:
            raise SuiteError(f"`grid.head[{i}]`: unknown head {head!r}; valid heads: {heads}")
        try:  # a tiny instance: the options are checked by the head itself
            create_head(head, 4, 2, **head_kwargs)
        except (TypeError, ValueError) as exc:
            raise SuiteError(f"`model.head_kwargs` for head {head!r}: {exc}") from None
    if suite.plan is not None:
        _check_tuned(suite)  # every setting's loss spec and train config
    for i, spec in enumerate(as_list(suite.config["grid"]["loss"])):
        if suite.plan is not None:
            break  # tuned: the grid entries may hold {placeholders}, checked per setting above
        spec = normalise_loss(spec, f"grid.loss[{i}]")
        try:
            built = build_losses(training_labels(spec)[0], suite.config["train"])
        except ValueError as exc:
            raise SuiteError(f"`grid.loss[{i}]` ({loss_label(spec)}): {exc}") from None
        for loss in built:
            problem = try_loss(loss)
            if problem:
                raise SuiteError(f"`grid.loss[{i}]` ({loss_label(spec)}) fails on a tiny "
                                 f"batch: {problem}; check its options (python -m mlbench "
                                 "losses lists the losses; each loss's class documents its "
                                 "options)")
    ref = suite.config["eval"]["reference"]
    tuned = {c.loss for c in suite.plan.cells} if suite.plan is not None else set()
    try:
        if "".join(ref.split()) not in tuned:  # a tuned grid entry is its own reference label
            losses.create_loss(ref, stats=dummy_stats())
    except ValueError as exc:
        raise SuiteError(f"`eval.reference`: {exc}") from None


def check_weights(suite: Suite) -> None:
    """Every backbone's weights are where the runs will look: a ``model.weights`` file
    exists; with ``model.pretrained`` and ``HF_HUB_OFFLINE=1``, a backbone without a file has
    its hub weights in the local cache (imports timm).

    Raises:
        SuiteError: names the backbone, the file or cache, and the command that fixes it.
    """
    from mlbench.models.hub import hub_weights, offline

    model = suite.config["model"]
    backbones = as_list(suite.config["grid"]["backbone"])
    checked: set = set()
    for backbone, file in backbone_weights(model["weights"], backbones).items():
        key = "`model.weights`" if isinstance(model["weights"], str) else \
            f"`model.weights.{backbone}`"
        if file is not None:
            if file not in checked:  # one file for every backbone: loaded once
                check_weights_file(file, key)
                checked.add(file)
            continue
        if not (model["pretrained"] and offline()):
            continue
        where = hub_weights(backbone)
        if where.source != "none" and where.cached is None:
            raise SuiteError(
                f"backbone {backbone!r}: its pretrained weights ({where.location}) are not in "
                "the local cache and HF_HUB_OFFLINE=1 forbids the download; on a machine with "
                f"internet run `python -m mlbench prefetch {shlex.quote(suite.source or 'SUITE')}` "
                f"(add --dir DIR to get files for `model.weights`), or set `model.weights`")


def _check_tuned(suite: Suite) -> None:
    """Each setting a tuned suite tries: its loss spec (built and called on a tiny batch)
    and its train config, so a bad value fails before any run starts."""
    from mlbench.train import TrainConfig

    seen: set = set()
    for cell in suite.plan.cells:
        for setting in cell.settings:
            cfg = next(iter(setting.runs.values())).config
            text = repr(cfg["loss"]) + repr(setting.values)
            if text in seen:
                continue
            seen.add(text)
            where = f"`tune` setting {setting.values} of {cell.loss!r}"
            try:
                built = build_losses(training_labels(cfg["loss"])[0], cfg["train"])
            except (TypeError, ValueError) as exc:
                raise SuiteError(f"{where}: {exc}") from None
            for loss in built:
                problem = try_loss(loss)
                if problem:
                    raise SuiteError(f"{where}: the loss fails on a tiny batch: {problem}")
            _check_finite(cfg["train"], f"{where}: `train")
            try:
                TrainConfig.from_dict(cfg["train"], ignore_unknown=True)
            except (TypeError, ValueError) as exc:
                raise SuiteError(f"{where}: `train`: {exc}") from None


def build_losses(spec, train: dict) -> list:
    """The losses a run's (normalised) loss spec trains with, built on dummy statistics: one,
    or a recipe's stages' (with their settings checked against ``train``).

    Raises:
        ValueError: a bad loss spec or stage setting.
    """
    import losses
    from mlbench.train import TrainConfig, is_recipe, recipe_stages

    if is_recipe(spec):
        cfg = TrainConfig.from_dict(train, ignore_unknown=True)
        return [stage.loss_fn for stage in recipe_stages(spec, cfg, dummy_stats())]
    return [losses.create_loss(spec, stats=dummy_stats())]


def _check_finite(train: dict, where: str) -> None:
    """Refuse a number that is not finite in the train settings (``lr: .inf``, ``.nan``):
    it passes ``> 0`` checks, and every run would fail on its first step."""
    import math

    for key, value in train.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                e_g = " (e.g. --set train.lr=1e-3)" if key == "lr" else ""
                raise SuiteError(f"{where}.{key}`: {v} is not a finite number; give a finite "
                                 f"value{e_g}")


def check_weights_file(weights, key: str = "`model.weights`") -> None:
    """A weights file (suite key ``key``) loads weights-only (tensors and plain values, as
    every run loads it): a missing file, a pickle of Python objects or a file that is no
    PyTorch checkpoint is refused here, before any run, not in every run (imports torch).

    Raises:
        SuiteError: one line naming the key, the file and the fix.
    """
    import pickle
    import warnings

    import torch

    path = Path(weights)
    if not path.is_file():
        raise SuiteError(f"{key}: file not found: {weights}")
    try:
        with warnings.catch_warnings():  # torch's own note on pickle protocols: not ours
            warnings.simplefilter("ignore")
            torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise SuiteError(
            f"{key}: {weights} holds pickled Python objects, not only tensors; "
            "mlbench loads weights only (unpickling runs code): save the state dict alone "
            "(torch.save(model.state_dict(), FILE)) and give that file") from None
    except Exception as exc:  # anything else: not a checkpoint torch can read
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise SuiteError(f"{key}: {weights} is not a PyTorch checkpoint torch can "
                         f"read ({what}); give a file saved with torch.save(state_dict, FILE)"
                         ) from None


def try_loss(loss) -> str | None:
    """Call a built loss forward and backward on a tiny batch (4 images x 14 classes, every row
    and column with both labels): wrong option types (``gamma: "two"``) fail here, before any
    run is built, not in every run. Returns the error in one line, or None."""
    import torch

    logits = torch.linspace(-2.0, 2.0, 4 * 14).reshape(4, 14).requires_grad_()
    targets = (torch.arange(4)[:, None] + torch.arange(14)[None, :]) % 2
    try:
        value = loss(logits, targets.float())
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            value = torch.as_tensor(value).sum()
        value.backward()
    except Exception as exc:  # anything a loss raises on valid input is its options' fault
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    if not torch.isfinite(value.detach()).all():
        return f"the loss is {value.item()} (not finite)"
    return None


def dummy_stats() -> dict:
    """Statistics of the right shape, so losses that need them can be built for checking."""
    import numpy as np

    return {"class_counts": np.ones(14, dtype=np.int64), "num_samples": 14}



def sim_root_problem(ds: dict) -> str | None:
    """Why ``dataset.root`` cannot take the CXR14-sim that ``dataset.sim`` asks for, or None.

    The driver generates CXR14-sim into an absent or empty folder and marks it with
    ``SIM_MARKER``; a folder with other contents and no marker (real ChestX-ray14, say)
    would be trained on while the runs are labelled sim, with ids that ignore the folder.
    """
    if ds.get("sim") is None or ds.get("root") is None:
        return None
    root = Path(ds["root"])
    if not root.exists() or (root / SIM_MARKER).is_file():
        return None  # generated now, or made by the driver (parameters checked when used)
    if root.is_dir() and not any(root.iterdir()):
        return None
    return (
        f"`dataset.root` {str(root)!r} is not a CXR14-sim folder made by mlbench (no "
        f"{SIM_MARKER}), but `dataset.sim` is set, so the runs would train on what it holds "
        "and label it sim. To use the real data in it, drop `sim`: --set dataset.sim=null; "
        "to generate CXR14-sim, set `dataset.root` to an empty or new folder (or one made "
        "with the same `dataset.sim`)"
    )


def data_problem(suite: Suite) -> str | None:
    """Why the suite's dataset cannot be used, or None. Cheap: no torch, no decoding.

    A ``sim`` dataset is generated by the run; its only problem can be a ``dataset.root``
    that holds something else (``sim_root_problem``).
    """
    ds = suite.dataset
    if ds["sim"] is not None:
        problem = sim_root_problem(ds)
        return f"error: {problem}" if problem else None
    root = Path(ds["root"])
    if not root.is_dir():
        what = f"the ChestX-ray14 folder {str(root)!r} (dataset.root) does not exist"
    elif not any((root / n).is_file() for n in LABEL_FILES):
        what = f"{str(root)!r} (dataset.root) has no label table ({' or '.join(LABEL_FILES)})"
    elif not all((root / n).is_file() for n in SPLIT_FILES.values()):
        what = f"{str(root)!r} (dataset.root) lacks the split lists {' and '.join(SPLIT_FILES.values())}"
    else:
        return None
    src = f" of {suite.source}" if suite.source else ""
    return (
        f"Cannot run suite {suite.name!r}{src}: {what}.\n\n"
        "The suite needs the NIH ChestX-ray14 release (112,120 PNGs, about 45 GB):\n"
        f"  1. download it from {NIH_URL}\n"
        "     (Data_Entry_2017_v2020.csv, train_val_list.txt, test_list.txt, images_001..012)\n"
        "  2. unpack everything into one folder, then point the suite at it:\n"
        "       export CXR14_ROOT=/path/to/ChestX-ray14\n"
        f"       python -m mlbench run {shlex.quote(str(suite.source)) if suite.source else 'SUITE'}\n"
        "     (or: --set dataset.root=/path/to/ChestX-ray14)\n\n"
        "No data at hand? The simulated suite (CXR14-sim, generated on the fly, ~4 min on CPU):\n"
        "       python -m mlbench run suites/quickstart.yaml\n"
    )

