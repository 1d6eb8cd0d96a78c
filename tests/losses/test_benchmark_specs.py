"""The throughput benchmarks (``benchmarks/test_losses.py``, not run in CI) pick up every
registered loss and every suite composite, and their table ranks them with × BCE."""

from __future__ import annotations

import json

import losses
from benchmarks.specs import loss_specs, suite_composites, term_names
from benchmarks.table import render


def test_every_registered_loss_and_suite_composite_is_benchmarked():
    specs = loss_specs()
    assert set(losses.list_losses()) <= set(specs)
    assert "bce+0.1*msml" in suite_composites()  # the paper's composite, in the shipped suites
    assert len(specs) == len(set(specs))
    for spec in specs:
        assert all(name in losses.list_losses() for name in term_names(spec)), spec


def test_every_spec_builds_and_runs_as_the_benchmark_calls_it():
    from benchmarks.conftest import Device, bench_inputs, cell_bytes
    from benchmarks.launches import make_step
    from benchmarks.test_losses import build

    cpu = Device("cpu", "cpu", None, 2**30)
    logits, targets = bench_inputs(8, 5, cpu)
    assert cell_bytes(logits, targets, "fwd_bwd") == 8 * 5 * (4 + 1 + 4)
    for spec in loss_specs():
        for mode in ("fwd", "fwd_bwd"):
            make_step(build(spec, targets), logits, targets, mode)()


def _cell(loss, mode, ms, terms=None, C=14, B=4096):
    info = {"bench": "losses", "loss": loss, "terms": terms or [loss], "mode": mode, "C": C,
            "B": B, "dtype": "float32", "peak_memory_bytes": 2**20, "gb_per_s": 1.0, "bytes": 1}  # fmt: skip
    return {"stats": {"median": ms / 1e3}, "extra_info": info}


def test_table_ranks_losses_per_shape_with_x_bce_and_x_terms(tmp_path):
    cells = [
        _cell("bce", "fwd", 1.0), _cell("bce", "fwd_bwd", 2.0),
        _cell("msml", "fwd", 1.5), _cell("msml", "fwd_bwd", 3.0),
        _cell("bce+0.1*msml", "fwd_bwd", 5.5, terms=["bce", "msml"]),
        _cell("bce", "fwd_bwd", 9.0, C=80),
    ]  # fmt: skip
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"benchmarks": cells}))
    text = render(path)
    assert "C=14, B=4096" in text and "C=80, B=4096" in text
    rows = [r for r in text.split("C=80")[0].splitlines() if r.startswith("|") and "---" not in r]
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]
    assert [c[1] for c in cells] == ["bce", "msml", "bce+0.1*msml"]  # ranked by fwd+bwd time
    assert cells[1][5] == "1.5"  # msml fwd+bwd × BCE
    assert cells[2][8] == "1.1"  # composite over its terms: 5.5 / (2 + 3)


def test_table_takes_the_median_of_repeated_runs(tmp_path):
    paths = []
    for i, ms in enumerate([2.0, 9.0, 3.0]):  # one run under a burst of load
        paths.append(tmp_path / f"run{i}.json")
        paths[-1].write_text(json.dumps({"benchmarks": [_cell("bce", "fwd_bwd", ms)]}))
    text = render(paths)
    assert "median of 3 runs" in text
    row = [r for r in text.splitlines() if "| bce" in r][0]
    assert [c.strip() for c in row.strip("|").split("|")][4] == "3"  # fwd+bwd ms


def test_interleaved_timing_gives_ratios_to_the_first_spec_and_to_the_terms(capsys):
    from benchmarks.interleaved import main, ratios

    assert main(["bce", "msml", "bce+0.1*msml", "--B", "8", "--C", "3", "--repeats", "2",
                 "--calls", "1"]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert "medians over 2 interleaved repeats" in lines[0]
    assert lines[1].split()[0] == "bce" and "× bce 1.000" in lines[1]
    assert "× terms" in lines[3] and "× terms" not in lines[2]
    times = {"bce": [1.0, 1.0, 5.0], "msml": [2.0, 2.0, 10.0], "bce+0.1*msml": [3.3, 3.3, 15.0]}
    (_, _, _, none), (_, t, vs_bce, _), (_, _, _, vs_terms) = ratios(times)
    assert none is None and t == 2.0 and vs_bce == 2.0 and abs(vs_terms - 1.1) < 1e-12


def test_peer_agreement_report_runs_and_lists_every_peer(capsys):
    """``python -m benchmarks.peer_agreement`` (the figures in docs/ADD_A_LOSS.md): one batch,
    every loss with a timm / MONAI / LibAUC peer listed with a number or the reason it is not."""
    from benchmarks.peer_agreement import main

    assert main(["--dtype", "float64", "--batches", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("zlpr", "twoway", "cb", "db", "poly", "aucm", "pairwise_auc", "PESG", "PDSCA"):
        assert name in out, name
