from __future__ import annotations

from mlbench.cli import main
from mlbench.data.cache import find_cache


def test_cli_sim_then_prepare(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["data", "sim", str(out), "--images", "20", "--size", "32", "--seed", "3"]) == 0
    assert len(list((out / "images").iterdir())) == 20
    assert find_cache(out, 16) is None
    assert main(["data", "prepare", str(out), "--size", "16", "--workers", "1"]) == 0
    assert find_cache(out, 16) is not None
    assert "cache ready" in capsys.readouterr().out


def test_cli_bad_arguments_are_one_line_errors_not_tracebacks(tmp_path, capsys):
    assert main(["data", "sim", str(tmp_path / "s"), "--images", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "`images`" in err and "Traceback" not in err
    assert main(["data", "sim", str(tmp_path / "s"), "--size", "3"]) == 2
    assert "`size`" in capsys.readouterr().err
    assert main(["data", "prepare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err


def test_prepare_default_size_is_the_suites_image_size():
    # `data prepare ROOT` then `run SUITE` must find that cache, not decode everything again
    from mlbench.cli import build_parser
    from mlbench.suite import DATASET

    args = build_parser().parse_args(["data", "prepare", "ROOT"])
    assert args.size == DATASET["image_size"].default


def test_cli_sim_test_split_knobs(tmp_path, capsys):
    from mlbench.data.sim import read_marker

    out = tmp_path / "knobs"
    assert main(["data", "sim", str(out), "--images", "20", "--size", "16",
                 "--test-fraction", "0.5", "--sick-preference", "0"]) == 0
    assert read_marker(out) == {"images": 20, "seed": 0, "size": 16, "test_fraction": 0.5,
                                "sick_preference": 0.0}
    capsys.readouterr()
    assert main(["data", "sim", str(out), "--images", "20", "--size", "16",
                 "--test-fraction", "0.5", "--sick-preference", "0"]) == 0
    assert "already holds" in capsys.readouterr().out
