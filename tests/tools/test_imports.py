"""tools.imports: the floors, cycles, private imports and re-exports of a package."""

import subprocess
import sys
import textwrap
from pathlib import Path

from tools import imports

REPO = Path(__file__).resolve().parents[2]


def _plant(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_floors_count_the_longest_chain(tmp_path):
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "X = 1\n",
        "pkg/mid.py": "from pkg.low import X\n",
        "pkg/top.py": "from pkg.mid import X\nfrom pkg.low import X as Y\n",
        "pkg/sub/__init__.py": '"""A face."""\nfrom pkg.sub.inner import Z\n',
        "pkg/sub/inner.py": "def f():\n    from pkg.top import X  # an import in a function\n",
    })
    res = imports.measure(pkg, [])
    assert res["room_floors"] == {"pkg": 1, "pkg.low": 1, "pkg.mid": 2, "pkg.top": 3,
                                  "pkg.sub": 4}
    assert not res["module_cycles"] and not res["room_cycles"]
    assert imports.problems(res) == 0
    text = imports.report(res, pkg, per_module=False)
    assert text.startswith("pkg: 5 rooms, 4 floors, 4 arrows, 0 module cycles")
    assert "floor  4  pkg/sub/" in text


def test_each_problem_is_found(tmp_path):
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import x\n",
        "pkg/b.py": "x = 1\n_hidden = 2\ndef f():\n    from pkg.a import x\n",  # a cycle
        "pkg/c.py": "from pkg.b import _hidden\n",  # a private name across files
        "pkg/d.py": "import pkg.b as bb\nY = bb._hidden\n",  # the same, as an attribute
        "pkg/e.py": "from pkg.b import x  # noqa: F401\n",  # a re-export outside a face
        "pkg/sub/__init__.py": "from pkg.sub.m import thing\nfrom pkg.b import x\n",
        "pkg/sub/m.py": "thing = 1\n",
        "pkg/f.py": "from pkg.sub.m import thing\n",  # a second path (the face has it)
        "pkg/g.py": "def f():\n    return __import__('pkg.c')\n",
    })
    res = imports.measure(pkg, [])
    assert res["module_cycles"] == [["pkg.a", "pkg.b"]]
    assert res["room_cycles"] == [["pkg.a", "pkg.b"]]
    assert sorted((r.source, r.target) for r in res["private"]) == [
        ("pkg.c", "pkg.b"), ("pkg.d", "pkg.b")]
    why = [w for _, _, w in res["reexports"]]
    assert "`# noqa: F401` import of pkg.b" in why
    assert "face hands on x of pkg.b" in why
    assert [(r.source, face) for r, face in res["second_paths"]] == [("pkg.f", "pkg.sub.thing")]
    assert "pkg.c" in res["rooms"]["pkg.g"]  # __import__ with a literal is an arrow
    assert imports.problems(res) == 7
    assert imports.main([str(pkg), "--also", "--check"]) == 1


def test_importers_outside_the_package_are_checked(tmp_path):
    pkg = _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/b.py": "_hidden = 2\n",
        "tests/test_b.py": "from pkg.b import _hidden\n",
    })
    res = imports.measure(pkg, [tmp_path / "tests"])
    assert [r.names for r in res["private"]] == [["_hidden"]]
    assert "tests" not in "".join(res["rooms"])  # importers only, not rooms


def test_runs_as_a_module_with_help():
    res = subprocess.run([sys.executable, "-m", "tools.imports", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "floors" in res.stdout and "--check" in res.stdout


def test_the_real_tree_has_no_cycle_private_import_or_reexport():
    res = imports.measure(REPO / "mlbench", [REPO / d for d in ("tests", "benchmarks", "tools")])
    assert res["module_cycles"] == [] and res["room_cycles"] == []
    assert [(r.source, r.line, r.names) for r in res["private"]] == []
    assert res["reexports"] == []
    assert [(r.source, r.line, face) for r, face in res["second_paths"]] == []
    floors = res["room_floors"]
    assert max(floors.values()) < 12  # 12 before the packages by stage (issue 23)
    # the read side stands beside the driver, not above it
    assert "mlbench.driver" not in res["rooms"]["mlbench.leaderboard"]
    assert floors["mlbench.leaderboard"] <= floors["mlbench.driver"]
    assert imports.main([str(REPO / "mlbench"), "--check"]) == 0
