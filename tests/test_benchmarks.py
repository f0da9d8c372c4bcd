"""benchmarks/: the harness runs end to end at tiny sizes, so that it cannot rot.

The real figures come from `python -m benchmarks.run` on an idle machine
(BENCHMARKS.md). Here `--quick` (3 to 4 minutes on two cores) measures it all once,
and the tests check that what it measured and wrote is sane.
"""

import json
import shutil
import signal
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, require

from benchmarks import report

LESSONS = ["demo.py", "train_wine_elasticnet.py", "train_iris_sweep.py", "track_training_curves.py"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Run the harness with --quick into a copy of BENCHMARKS.md: (results, copy before, after)."""
    require(shutil.which("hyperfine"), "hyperfine is not installed (apt-get install hyperfine)")
    folder = tmp_path_factory.mktemp("benchmarks")
    original = (REPO_ROOT / "BENCHMARKS.md").read_text()
    (folder / "BENCHMARKS.md").write_text(original)
    repo_store = REPO_ROOT / "mlflow.db"
    store_before = repo_store.stat().st_mtime_ns if repo_store.exists() else None
    args = ["--quick", "--report", folder / "BENCHMARKS.md", "--results", folder / "results.json"]
    harness = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", *map(str, args)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = harness.communicate(timeout=900)  # 3 to 4 minutes; this catches hangs
    except subprocess.TimeoutExpired:
        harness.send_signal(signal.SIGTERM)  # it stops its servers on SIGTERM
        output, _ = harness.communicate(timeout=60)
        pytest.fail(f"--quick took over 15 minutes:\n{output[-3000:]}")
    assert harness.returncode == 0, output[-5000:]
    store_after = repo_store.stat().st_mtime_ns if repo_store.exists() else None
    assert store_after == store_before, "the harness touched the repository's mlflow.db"
    results = json.loads((folder / "results.json").read_text())
    return results, original, (folder / "BENCHMARKS.md").read_text()


def test_every_lesson_and_baseline_ran_once_in_a_plausible_time(quick):
    results = quick[0]
    assert [row["lesson"] for row in results["scripts"]] == LESSONS
    for row in results["scripts"]:
        assert row["warm"]["command"].startswith(f"python {row['lesson']}")
        assert row["baseline"]["command"].startswith("python benchmarks/baselines/baseline_")
        assert row["cold"] is None  # --quick runs each lesson once only
        for timing in (row["warm"], row["baseline"]):
            assert timing["exit_codes"] == [0] and len(timing["times"]) == 1
            # Importing MLflow and scikit-learn alone takes longer than half a second.
            assert 0.5 < timing["min"] <= timing["median"] <= timing["max"] < 300


def test_step_metrics_arrived_in_both_stores(quick):
    results = quick[0]
    for store in ("SQLite", "tracking server"):
        batch, per_value = (results["step_metrics"][store][m] for m in ("log_batch", "log_metric"))
        assert batch["points"] == 400 and batch["median"] > 0
        assert 0 < per_value["points"] <= 400 and per_value["points"] % 4 == 0
        assert per_value["median"] > 0
    assert results["step_metrics"]["server_startup"] > 0.5


def test_compare_runs_and_serving_were_measured(quick):
    results = quick[0]
    compare = results["compare_runs"]
    assert compare["runs"] == 50
    assert "compare_runs.py --experiment wine-quality-elasticnet" in compare["compare"]["command"]
    assert compare["compare"]["exit_codes"] == compare["floor"]["exit_codes"] == [0]
    (served,) = results["serving"]  # --quick serves the sweep's champion only
    for latency in (served["one_row"], served["ping"]):
        assert latency["requests"] == 30 and 0 < latency["p50"] <= latency["p99"] < 5000


def generated(text):
    """{section name: the text between its markers}, and the text with those emptied."""
    sections = {}
    for make in report.SECTIONS:
        start, end = f"<!-- tables:{make.__name__} -->", f"<!-- /tables:{make.__name__} -->"
        before, _, rest = text.partition(start)
        sections[make.__name__], _, after = rest.partition(end)
        text = before + start + end + after
    return sections, text


def test_report_tables_were_rewritten_and_the_prose_kept(quick):
    results, original, written = quick
    sections, prose = generated(written)
    assert prose == generated(original)[1]
    for make in report.SECTIONS:
        assert sections[make.__name__] == f"\n{make(results)}\n"
    rows = sections["targets"].strip().splitlines()
    assert len(rows) == 2 + 4 + 2 + 1 + 1  # header, lessons, two stores, compare, serving
    assert "a --quick run" in sections["machine"]
    assert str(REPO_ROOT) not in written and "/tmp" not in written


def test_targets_say_which_were_missed():
    timing = {"median": 1.0, "min": 1.0, "max": 1.0, "command": "python x.py", "times": [1.0]}
    slow = timing | {"median": 10.0}
    batch = {"points": 10_000, "median": 0.5}
    results = {
        "scripts": [
            {"lesson": "demo.py", "cold": timing, "warm": timing, "baseline": slow},
            {"lesson": "slow.py", "cold": timing, "warm": slow, "baseline": slow},
        ],
        "step_metrics": {
            "SQLite": {"log_batch": batch},
            "tracking server": {"log_batch": batch | {"median": 2.0}},
        },
        "compare_runs": {"runs": 1000, "compare": slow, "floor": timing},
        "serving": [{"one_row": {"p50": 4.0}}],
    }
    rows = report.targets(results).splitlines()
    assert "| `demo.py` ≤ 0.6× its baseline (warm) | 0.10× | yes |" in rows
    assert "| `slow.py` ≤ 0.6× its baseline (warm) | 1.00× | **no** |" in rows
    assert "| 10,000 step points < 1 s, SQLite | 0.50 s | yes |" in rows
    assert "| `compare_runs.py` over 1,000 runs < 2 s | 10.00 s | **no** |" in rows
    assert "| Serving p50 < 15 ms for one row | 4.0 ms | yes |" in rows
    with pytest.raises(SystemExit, match="tables:machine"):
        report.render("no markers here", results)


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
