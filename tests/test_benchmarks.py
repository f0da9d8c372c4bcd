"""benchmarks/: the harness cannot rot, checked in seconds.

The figures come from `python -m benchmarks.run` on an idle machine (BENCHMARKS.md);
`python -m benchmarks.run --quick` runs all of it once at tiny sizes, in minutes. Here:
every script the harness times exists and takes the flags it is given, an import floor
is the lesson's own imports, one lesson and its floor are timed for real through
hyperfine, and the tables are made from measurements, with the prose around them kept.
"""

import importlib.util
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import REPO_ROOT, load_lesson, require

# The harness is run as `python -m benchmarks.run` from the repository's root. The root is
# on the path for this import only: a lesson that imports something of ours must still fail.
sys.path.insert(0, str(REPO_ROOT))
from benchmarks import report, run  # noqa: E402

sys.path.remove(str(REPO_ROOT))

TIMED = run.LESSONS + run.SPARK_LESSONS
NAMES = [lesson for lesson, _, _ in TIMED]
SPARK = [lesson for lesson, _, _ in run.SPARK_LESSONS]


@pytest.mark.parametrize(("lesson", "baseline", "store_of"), TIMED)
def test_each_timed_lesson_exists_and_takes_the_flags_it_is_given(lesson, baseline, store_of):
    if lesson in SPARK:
        require(importlib.util.find_spec("pyspark"), "pyspark is not installed")
    module = load_lesson(lesson)
    for quick in (False, True):
        flags = run.choose_sizes(quick).flags.get(lesson, ())
        module.parse_args([str(flag) for flag in flags])
    if baseline:
        assert (run.BENCHMARKS / "baselines" / baseline).is_file()
    if store_of:  # it reads the store of a lesson timed before it
        assert NAMES.index(store_of) < NAMES.index(lesson)


def test_compare_runs_takes_the_flags_it_is_given():
    load_lesson("compare_runs.py").parse_args([*run.COMPARE, "--max-results", "1000"])


def test_an_import_floor_is_the_lessons_own_package_imports(tmp_path):
    script = tmp_path / "lesson.py"
    script.write_text(
        textwrap.dedent(
            '''
            """A lesson."""
            import argparse
            import os.path
            import mlflow
            from pathlib import Path
            from sklearn import metrics as sk
            try:
                import pyspark
            except ImportError:
                pyspark = None
            import mlflow


            def main():
                import pandas


            class Helper:
                import numpy
            '''
        )
    )
    assert run.package_imports(script) == {
        "import mlflow": "mlflow",
        "from sklearn import metrics as sk": "sklearn",
        "import pyspark": "pyspark",
    }


def test_every_import_floor_imports_installed_packages_and_nothing_of_ours():
    for lesson in [*NAMES, "compare_runs.py"]:
        packages = set(run.package_imports(REPO_ROOT / lesson).values())
        assert "mlflow" in packages, lesson
        for package in packages:
            spec = importlib.util.find_spec(package)
            assert spec is not None, f"{lesson} imports {package}, which is not installed"
            assert REPO_ROOT not in Path(spec.origin).parents, f"{lesson} imports {package}"


def test_a_lesson_and_its_import_floor_timed_by_hyperfine(tmp_path):
    require(shutil.which("hyperfine"), "hyperfine is not installed (apt-get install hyperfine)")
    repo_store = REPO_ROOT / "mlflow.db"
    store_before = repo_store.stat().st_mtime_ns if repo_store.exists() else None
    sizes = run.choose_sizes(quick=True)
    (row,) = run.time_lessons(tmp_path, sizes, [("demo.py", None, None)])
    assert row["warm"]["command"] == "python demo.py --n-estimators 10"
    floor = "python -c 'import mlflow; from filelock import FileLock; from sklearn.datasets"
    assert row["floor"]["command"].startswith(floor)
    assert row["packages"] == ["mlflow", "filelock", "sklearn", "matplotlib"]
    assert row["full_floor"]["command"].endswith("benchmarks/loaded_modules.py import modules.txt")
    loaded = (tmp_path / "demo.py" / "modules.txt").read_text().split()
    assert row["modules"] == len(loaded) > 1000
    assert {"mlflow.sklearn", "mlflow.store.tracking.sqlalchemy_store", "skops.io"} < set(loaded)
    assert row["cold"] is None and row["baseline"] is None  # --quick, and no baseline asked
    for timing in (row["warm"], row["floor"], row["full_floor"]):
        assert timing["exit_codes"] == [0] and len(timing["times"]) == 1
        assert 0 < timing["min"] <= timing["median"] <= timing["max"] < 300
    assert (tmp_path / "demo.py" / "mlflow.db").is_file()  # the run went to a store of its own
    store_after = repo_store.stat().st_mtime_ns if repo_store.exists() else None
    assert store_after == store_before, "the harness touched the repository's mlflow.db"
    lines = report.scripts({"scripts": [row]}).splitlines()
    assert lines[2].startswith("| `python demo.py --n-estimators 10` | – | ")
    assert lines[2].endswith("× | – | – |")
    assert lines[-1].startswith(
        "- `demo.py`: mlflow, filelock, sklearn, matplotlib; all it loads: "
    )


def timing(median, command="python x.py"):
    return {"median": median, "min": median, "max": median, "command": command, "times": [median]}


@pytest.fixture
def measured():
    """Made-up results of a full run, in run.py's form."""
    batch = {"points": 10_000, "median": 0.5}
    served = {"model": "the sweep's champion", "startup": 9.0}
    ping = {"p50": 0.4, "p99": 0.5, "requests": 500}
    return {
        "machine": {
            "cpu": "a CPU",
            "cores": 2,
            "python": "3.11.7",
            "packages": {"mlflow": "3.17.2"},
            "date": "2026-12-02 10:19 UTC",
            "quick": False,
            "spark": True,
            "minutes": 14.0,
            "load_before": [0.1, 0.2, 0.3],
            "load_after": [1.0, 1.1, 1.2],
        },
        "scripts": [
            {
                "lesson": "demo.py",
                "packages": ["mlflow", "filelock", "sklearn", "matplotlib"],
                "modules": 2800,
                "cold": timing(6.0, "python demo.py"),
                "warm": timing(5.2, "python demo.py"),
                "floor": timing(3.0, "python -c 'import mlflow'"),
                "full_floor": timing(5.0),
                "baseline": timing(10.4),
            },
            {
                "lesson": "load_model.py",
                "packages": ["mlflow", "pandas", "sklearn"],
                "modules": 2500,
                "cold": None,
                "warm": timing(8.0, "python load_model.py"),
                "floor": timing(3.0),
                "full_floor": timing(4.0),
                "baseline": None,
            },
        ],
        "step_metrics": {
            "SQLite": {"log_batch": batch, "log_metric": {"points": 400, "median": 2.0}},
            "tracking server": {"log_batch": batch | {"median": 2.0}, "log_metric": batch},
            "server_startup": 3.0,
        },
        "compare_runs": {
            "runs": 1000,
            "compare": timing(4.5, "python compare_runs.py"),
            "floor": timing(3.0, "python -c 'import mlflow'"),
            "full_floor": timing(4.0),
            "packages": ["mlflow", "pandas", "matplotlib"],
            "modules": 2400,
        },
        "serving": [
            served | {"one_row": {"p50": 4.0, "p99": 6.0, "requests": 500}, "ping": ping},
        ],
    }


def test_targets_say_which_were_missed(measured):
    rows = report.targets(measured).splitlines()
    assert rows[2:] == [
        "| `demo.py` ≤ 1.1× its full import floor (warm) | 1.04× | yes |",
        "| `load_model.py` ≤ 1.1× its full import floor (warm) | 2.00× | **no** |",
        "| `compare_runs.py` over 1,000 runs ≤ 1.1× its full import floor (warm)"
        " | 1.12× | **no** |",
        "| 10,000 step points < 1 s, SQLite | 0.50 s | yes |",
        "| 10,000 step points < 1 s, tracking server | 2.00 s | **no** |",
        "| Serving p50 < 15 ms for one row | 4.0 ms | yes |",
    ]


def test_lessons_table_has_floor_and_baseline_ratios(measured):
    lines = report.scripts(measured).splitlines()
    assert lines[0] == (
        "| Command | cold (new store) | warm | import floor | full import floor"
        " | warm / full floor | baseline, warm | warm / baseline |"
    )
    assert lines[2] == (
        "| `python demo.py` | 6.00 s (6.00–6.00) | 5.20 s (5.20–5.20) | 3.00 s (3.00–3.00)"
        " | 5.00 s (5.00–5.00) | 1.04× | 10.40 s (10.40–10.40) | 0.50× |"
    )
    assert lines[3] == (
        "| `python load_model.py` | – | 8.00 s (8.00–8.00) | 3.00 s (3.00–3.00)"
        " | 4.00 s (4.00–4.00) | 2.00× | – | – |"
    )
    assert lines[5:] == [
        "Median (min–max) of 1 runs, cold 1. The packages of each import floor:",
        "",
        "- `demo.py`: mlflow, filelock, sklearn, matplotlib; all it loads: 2,800 modules",
        "- `load_model.py`: mlflow, pandas, sklearn; all it loads: 2,500 modules",
    ]


def generated(text):
    """{section name: the text between its markers}, and the text with those emptied."""
    sections = {}
    for make in report.SECTIONS:
        start, end = f"<!-- tables:{make.__name__} -->", f"<!-- /tables:{make.__name__} -->"
        before, _, rest = text.partition(start)
        sections[make.__name__], _, after = rest.partition(end)
        text = before + start + end + after
    return sections, text


def test_benchmarks_md_gets_new_tables_and_keeps_its_prose(measured):
    original = (REPO_ROOT / "BENCHMARKS.md").read_text()
    written = report.render(original, measured)
    sections, prose = generated(written)
    assert prose == generated(original)[1]
    for make in report.SECTIONS:
        assert sections[make.__name__] == f"\n{make(measured)}\n"
    assert "Model served by `mlflow models serve`" in sections["serving"]
    assert sections["compare"].endswith("`benchmarks/fill_store.py`; 1.12× the full floor.\n")
    assert "| importing the 2,400 modules compare_runs.py loads | 4.00 s" in sections["compare"]
    with pytest.raises(SystemExit, match="tables:machine"):
        report.render("no markers here", measured)


def test_steps_table_extrapolates_the_slow_method():
    measured = {
        "log_batch": {"points": 10_000, "median": 0.5},
        "log_metric": {"points": 400, "median": 2.0},
    }
    results = {
        "step_metrics": {"SQLite": measured, "tracking server": measured, "server_startup": 3.0}
    }
    rows = report.steps(results).splitlines()
    assert (
        "| `MlflowClient.log_batch`, 1,000 points per call | 0.50 s | 20,000 | 0.50 s | 20,000 |"
        in rows
    )
    assert "| one `mlflow.log_metric` call per value | ≈ 50.00 s | 200 | ≈ 50.00 s | 200 |" in rows
    assert rows[-1] == "The tracking server was ready 3.0 s after its start."
