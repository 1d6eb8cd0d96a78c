"""Bad input is refused before anything runs, in one line naming the file or key and the fix;
nothing is written (issue 15, items 4 and 5; YAML safe-loading holds)."""

from __future__ import annotations

import pytest

from tests.helpers import cli, one_error, tiny_suite, write_suite

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("private_core_pool")]


@pytest.fixture
def suite_file(tmp_path):
    """A valid tiny suite (the data are never reached: every case fails before)."""
    return write_suite(tmp_path / "suite.yaml", tiny_suite(tmp_path / "sim", tmp_path / "out"))


def _refused(capsys, tmp_path, *argv) -> str:
    code, _, err = cli(capsys, *argv)
    assert code == 2, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "sim").exists()  # nothing written
    return one_error(err)


def test_bad_yaml_inside_set_is_one_line_naming_the_key(tmp_path, capsys, suite_file):
    line = _refused(capsys, tmp_path, "run", suite_file, "--set", "train.epochs=[1,")
    assert line.startswith("error: --set train.epochs: the value '[1,' is not valid YAML (")
    assert "close the list" in line


@pytest.mark.parametrize("dry", [False, True])
def test_a_folder_as_the_suite_is_one_line(tmp_path, capsys, dry):
    line = _refused(capsys, tmp_path, "run", str(tmp_path), *(["--dry-run"] if dry else []))
    assert line == (f"error: {tmp_path} is a folder, not a suite file; give a YAML file such as "
                    "suites/quickstart.yaml")


def test_a_non_utf8_file_as_the_suite_is_one_line(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"name: x\n\xff\xfe\x00garbage")
    line = _refused(capsys, tmp_path, "run", str(path))
    assert line.startswith(f"error: {path} is not a text (UTF-8) file")


def test_invalid_yaml_in_the_suite_file_is_one_line_with_its_place(tmp_path, capsys):
    path = tmp_path / "suite.yaml"
    path.write_text("name: x\ngrid: {loss: [bce,\n")
    line = _refused(capsys, tmp_path, "run", str(path))
    assert line.startswith(f"error: {path}: not valid YAML: ") and "line " in line


def test_yaml_is_safe_loaded(tmp_path, capsys):
    # a Python tag would run code with yaml.load: safe_load refuses it as invalid YAML
    path = tmp_path / "suite.yaml"
    marker = tmp_path / "pwned"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    line = _refused(capsys, tmp_path, "run", str(path))
    assert "not valid YAML" in line and "python/object" in line
    assert not marker.exists()


@pytest.mark.parametrize("seeds, shown", [
    ("[99999999999999999999999]", "99999999999999999999999"),
    ("[-1]", "-1"),
    ("[0, 4294967296]", "4294967296"),
])
def test_seeds_out_of_the_rngs_range_are_refused_naming_the_key(tmp_path, capsys, suite_file,
                                                                seeds, shown):
    for dry in ([], ["--dry-run"]):
        line = _refused(capsys, tmp_path, "run", suite_file, "--set", f"seeds={seeds}", *dry)
        index = 1 if seeds.startswith("[0,") else 0
        assert line == (f"error: `seeds[{index}]` must be in [0, 4294967295] (a 32-bit seed, "
                        f"what every RNG of a run takes), got {shown}")


@pytest.mark.parametrize("key", ["dataset.split_seed", "dataset.sim.seed"])
def test_negative_data_seeds_are_refused_naming_the_key(tmp_path, capsys, suite_file, key):
    line = _refused(capsys, tmp_path, "run", suite_file, "--set", f"{key}=-3")
    assert line == f"error: `{key}` must be >= 0, got -3"


def test_loss_kwargs_of_the_wrong_type_are_caught_at_preflight(tmp_path, capsys, suite_file):
    # README: bad kwargs are caught before anything is built (was: every run failed in pow())
    line = _refused(capsys, tmp_path, "run", suite_file, "--set",
                    "grid.loss=[bce, {name: focal, gamma: two}]")
    assert line.startswith("error: `grid.loss[1]` (focal(gamma=two)) fails on a tiny batch: "
                           "TypeError: ")


def test_every_shipped_loss_passes_the_preflight_call():
    # the tiny-batch call must not refuse a good loss: every registered one, and a composite
    import losses
    from mlbench.suite.checks import dummy_stats, try_loss

    for spec in [*losses.list_losses(), "bce+0.1*msml"]:
        assert try_loss(losses.create_loss(spec, stats=dummy_stats())) is None, spec


def test_unknown_key_is_one_line_naming_it(tmp_path, capsys, suite_file):
    line = _refused(capsys, tmp_path, "run", suite_file, "--set", "train.lrr=0.1")
    assert line.startswith("error: unknown key `train.lrr`; valid keys of `train`: [")


# a 315-byte alias bomb: 9 levels of 9 aliases, 9**9 (387 million) strings once expanded
_BOMB = "a: &a [xx,xx,xx,xx,xx,xx,xx,xx,xx]\n" + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("case", ["alias bomb", "1000 deep", "too big", "/dev/zero"])
def test_pathological_suite_files_are_refused_naming_the_limit(tmp_path, capsys, case):
    from mlbench.suite.load import MAX_SUITE_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES

    path = tmp_path / "suite.yaml"
    if case == "alias bomb":
        assert len(_BOMB) == 315
        path.write_text(_BOMB)
        want = f"more than {MAX_YAML_NODES} YAML nodes once its aliases are expanded (the limit)"
    elif case == "1000 deep":
        path.write_text("name: " + "[" * 1000 + "]" * 1000 + "\n")
        want = f"YAML nested deeper than {MAX_YAML_DEPTH} levels (the limit)"
    elif case == "too big":
        path.write_text("name: x\n" + "# padding\n" * (MAX_SUITE_BYTES // 10 + 1))
        want = f"larger than the limit for a suite file ({MAX_SUITE_BYTES} bytes)"
    else:
        path = "/dev/zero"
        want = "/dev/zero is not a regular file (a device or a pipe)"
    line = _refused(capsys, tmp_path, "run", str(path))
    assert want in line, line
