"""Offline clusters (issue 28): `model.weights` per backbone, `prefetch`, and a suite run offline
with missing weights refused at preflight. No network: the Hugging Face cache is written by
the test in the hub's own layout, with weights of the test's making."""

from __future__ import annotations

import pytest
import torch

from mlbench.suite import SuiteError, load_suite
from tests.helpers import finish, one_error, spawn, tiny_suite, write_suite

REPO_ID = "timm/test_resnet.r160_in1k"  # timm's pretrained config of test_resnet


@pytest.fixture
def hf_home(tmp_path):
    """$HF_HOME whose hub cache holds test_resnet's "pretrained" weights (seeded random)."""
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(7)
    state = timm.create_model("test_resnet", num_classes=0).state_dict()
    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / ("models--" + REPO_ID.replace("/", "--"))
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()},
              repo / "snapshots" / commit / "model.safetensors")
    return tmp_path / "hf"


def _pretrained_suite(tmp_path, sim_root, **changes):
    return write_suite(tmp_path / "suite.yaml",
                       tiny_suite(sim_root, tmp_path / "out", **{"model.pretrained": True},
                                  **changes))


def test_offline_without_cached_weights_is_refused_at_preflight(tmp_path, sim_root):
    suite = _pretrained_suite(tmp_path, sim_root)
    code, out, err = finish(spawn("run", suite, env={"HF_HUB_OFFLINE": "1",
                                                     "HF_HOME": str(tmp_path / "empty")}))
    assert code == 2, err
    line = one_error(err)
    assert "'test_resnet'" in line and "HF_HUB_OFFLINE=1" in line
    assert f"python -m mlbench prefetch {suite}" in line
    assert not (tmp_path / "out" / "results.db").exists()  # nothing started


def test_prefetch_into_a_folder_then_the_files_serve_an_offline_run(tmp_path, sim_root, hf_home):
    """prefetch --dir (offline here: the cache already holds the weights) writes
    DIR/test_resnet.pth and prints the model.weights mapping; a model built from that file
    has the cached weights, as timm's own offline hub load gives them."""
    suite = _pretrained_suite(tmp_path, sim_root)
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    code, out, err = finish(spawn("prefetch", suite, "--dir", str(tmp_path / "w"), env=env))
    assert code == 0, err
    file = tmp_path / "w" / "test_resnet.pth"
    assert file.is_file() and "weights:" in out and f"test_resnet: {file}" in out
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys, torch\n"
        "from mlbench.models import build_model\n"
        "hub = build_model('test_resnet', 'linear', pretrained=True).backbone.state_dict()\n"
        "own = build_model('test_resnet', 'linear', weights=sys.argv[1]).backbone.state_dict()\n"
        "assert hub.keys() == own.keys()\n"
        "assert all(torch.equal(hub[k], own[k]) for k in hub), 'file != hub weights'\n"
        "torch.manual_seed(0)\n"
        "new = build_model('test_resnet', 'linear').backbone.state_dict()\n"
        "assert not all(torch.equal(hub[k], new[k]) for k in hub if k.endswith('weight'))\n"
        "print('ok')\n")
    import subprocess
    import sys

    from tests.helpers import REPO, _env

    done = subprocess.run([sys.executable, str(probe), str(file)], cwd=REPO, env=_env(**env),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    # and a suite naming the file runs its preflight offline (no hub needed)
    named = _pretrained_suite(tmp_path, sim_root, **{"model.weights": {"test_resnet": str(file)}})
    code, out, err = finish(spawn("run", named, env={"HF_HUB_OFFLINE": "1",
                                                     "HF_HOME": str(tmp_path / "empty")}))
    assert code == 0, err


def test_prefetch_without_pretrained_has_nothing_to_do(tmp_path, sim_root):
    suite = write_suite(tmp_path / "s.yaml", tiny_suite(sim_root, tmp_path / "out"))
    code, out, err = finish(spawn("prefetch", suite))
    assert code == 0 and "nothing to fetch" in out, err


def test_weights_per_backbone(tmp_path, sim_root):
    """A mapping gives each backbone's runs their own file; a run's id is the one a suite
    naming that single file would give; a backbone left out has none."""
    a = tmp_path / "a.pth"
    torch.save({}, a)
    grid = {"backbone": ["test_resnet", "resnet10t"], "head": ["linear"], "loss": ["bce"]}
    mapped = load_suite(tiny_suite(sim_root, tmp_path / "o", grid=grid,
                                   **{"model.weights": {"test_resnet": str(a)}}), env={})
    files = {r.backbone: r.config["model"]["weights"] for r in mapped.runs}
    assert files == {"test_resnet": str(a), "resnet10t": None}
    single = load_suite(tiny_suite(sim_root, tmp_path / "o", grid=dict(grid, backbone=["test_resnet"]),
                                   **{"model.weights": str(a)}), env={})
    assert [r.id for r in mapped.runs if r.backbone == "test_resnet"] == [r.id for r in single.runs]
    with pytest.raises(SuiteError, match=r"names backbones not in `grid.backbone`: \['densenet121'\]"):
        load_suite(tiny_suite(sim_root, tmp_path / "o", **{"model.weights": {"densenet121": "x"}}),
                   env={})


def test_a_missing_file_of_the_mapping_is_named(tmp_path, sim_root):
    from mlbench.suite import check_names

    suite = load_suite(tiny_suite(sim_root, tmp_path / "o",
                                  **{"model.weights": {"test_resnet": str(tmp_path / "no.pth")}}),
                       env={})
    with pytest.raises(SuiteError, match=r"`model.weights.test_resnet`: file not found: .*no.pth"):
        check_names(suite)
