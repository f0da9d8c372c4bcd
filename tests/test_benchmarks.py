"""benchmarks/: the harness runs end to end at tiny sizes, so that it cannot rot.

The real figures come from `python -m benchmarks.run` on an idle machine
(BENCHMARKS.md); these tests only check that every part still works with the
current scripts and MLflow, and that the report shows what it measured.
"""

import json

import pytest
from conftest import REPO_ROOT, run_script, sqlite_uri

from benchmarks import run as harness


def test_quick_run_measures_demo_and_compare_runs(tmp_path):
    output, raw = tmp_path / "BENCHMARKS.md", tmp_path / "raw.json"
    done = run_script(
        "-m",
        "benchmarks.run",
        "--quick",
        "--only",
        "demo,compare",
        "--no-profile",
        "--output",
        str(output),
        "--json",
        str(raw),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads(raw.read_text())
    for side in ("workshop", "baseline"):
        for state in ("cold", "warm"):
            (run,) = results["demo"]["runs"][side][state]
            phases = run["phases"]
            # Every second of the process is in exactly one phase.
            assert sum(phases.values()) == pytest.approx(run["wall"], rel=0.02)
            assert phases["import"] > 0 and phases["tracking"] > 0 and phases["model"] > 0
            assert run["disk_read_mb"] >= 0
    workshop, baseline = (
        results["demo"]["runs"][s]["warm"][0]["calls"] for s in ("workshop", "baseline")
    )
    assert workshop["mlflow.log_params"]["count"] == 1
    assert baseline["mlflow.log_param"]["count"] == 5
    searches = results["compare"]["runs"]
    for variant in ("workshop", "workshop_no_freeze"):  # the same command, gc.freeze() off
        assert searches[variant][0]["calls"]["MlflowClient.search_runs"]["count"] >= 1

    report = output.read_text()
    assert "### demo.py" in report and "## compare_runs.py over many runs" in report
    assert "| Target | Measured | Met |" in report
    assert "python -m benchmarks.run --quick" in report

    # The same report again from the saved measurements, without measuring.
    rendered = tmp_path / "rendered.md"
    harness.main(
        ["--quick", "--only", "demo,compare", "--render", str(raw), "--output", str(rendered)]
    )
    assert rendered.read_text() == report


def test_step_metrics_stores_every_point_with_every_method(tmp_path):
    result = tmp_path / "steps.json"
    done = run_script(
        str(REPO_ROOT / "benchmarks" / "step_metrics.py"),
        "--tracking-uri",
        sqlite_uri(tmp_path / "steps.db"),
        "--points",
        "40",
        "--budget",
        "0.05",
        "--lesson-batch",
        "8",
        "--result",
        str(result),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    measured = {entry["method"]: entry for entry in json.loads(result.read_text())}
    assert set(measured) == set(harness_methods())
    for method in ("batch_1000", "batch_lesson", "async", "async_buffered"):
        assert measured[method]["points_measured"] == 40
        assert not measured[method]["extrapolated"]
    assert measured["batch_lesson"]["batch_size"] == 8


def harness_methods():
    from benchmarks import step_metrics

    return step_metrics.METHODS


def test_report_shows_every_section_and_flags_missed_targets():
    options = harness.parse_args(["--quick", "--setup"])
    report = harness.Report(fake_results(), options).render()
    for heading in (
        "## Targets",
        "### demo.py",
        "## Step metrics",
        "## compare_runs.py over many runs",
        "## Model serving",
        "## Set-up",
    ):
        assert heading in report
    # demo: 2 s against 5 s is 0.4x (met); serving p50 of 20 ms misses 15 ms.
    assert "| `demo.py` ≤ 0.6× its baseline (warm) | 0.40× | yes |" in report
    assert "| Serving p50 < 15 ms for one row | 20.0 ms | **no** |" in report
    assert "Skipped: no wine data" in report
    # The same fixed work took 1.5x as long in one section: the report says so.
    assert "took 1.5× as long at its slowest" in report
    # Every script process read 30 MB from disk: the report says imports paid for it.
    assert "- Each script process read 30.0 MB (30.0–30.0) from disk" in report
    # compare_runs: 1.5 s against 2.0 s is 0.75x (missed), explained by the store's floor.
    assert "the least any script that reads this store takes" in report
    assert "is 1.20 s" in report
    # serving: 20 ms - 8 ms in-process leaves 12 ms for the server; 10 trees at 200 µs each
    # means at most 15 trees fit in 15 ms. The sweep's 200-tree forest shows what size costs.
    assert "2.0 ms of it the forest's own `predict` (10 trees, 200 µs each)" in report
    assert "would have at most about 15 trees" in report
    assert "largest forest (200 trees, version 4) takes 15.0 ms" in report
    assert "**Serve the smallest model that is as good.**" in report
    # gc.freeze: compare_runs' 4 in-process phases of 0.30 s against 0.36 s without it;
    # the demo's exit, 0.40 s against the baseline's 1.00 s.
    assert "spent 1.20 s between start-up and exit, 1.44 s with `gc.freeze()` turned off" in report
    assert "0.40 s to exit per run, against 1.00 s for the baselines" in report
    # Where pip installed from: the kind of place, never its address.
    assert "points it at a local folder of packages" in report
    assert "/somewhere" not in report
    # step metrics against a server: where the client's time goes.
    assert "| HTTP: send, wait for the server, read | 1.50 |" in report


def fake_run(wall):
    share = wall / 5
    return {
        "wall": wall,
        "phases": dict.fromkeys(harness.PHASES, share),
        "calls": {"mlflow.log_params": {"count": 1, "seconds": 0.05}},
        "disk_read_mb": 30.0,
    }


def fake_results():
    def sides(workshop, baseline):
        return {
            "workshop": {"cold": [fake_run(workshop + 1)], "warm": [fake_run(workshop)]},
            "baseline": {"cold": [fake_run(baseline + 1)], "warm": [fake_run(baseline)]},
        }

    step = {
        "method": "batch_lesson",
        "label": "lesson",
        "points_measured": 400,
        "seconds_measured": 0.2,
        "points_per_second": 2000,
        "seconds_for_all": 0.2,
        "extrapolated": False,
    }
    serving_block = {"p50": 20.0, "p99": 30.0, "mean": 21.0, "requests_per_second": 50.0}
    return {
        "machine": {
            "cpu": "test CPU",
            "cores": 2,
            "memory": "1 GiB RAM",
            "os": "test OS",
            "python": "3.11",
            "packages": {"mlflow": "3.17.2"},
            "load": [0.1, 0.1, 0.1],
            "load_end": [0.1, 0.1, 0.1],
            "section_speed": {"demo": 0.3, "compare": 0.45},
            "date": "today",
        },
        "demo": {"runs": sides(2.0, 5.0), "args": []},
        "wine": {"skipped": "no wine data at /nowhere (pass --data PATH)"},
        "steps": {
            "points": 400,
            "metrics": 4,
            "lesson_batch": 40,
            "sqlite": [[step]],
            "server": [[step]],
            "server_startup": 3.0,
            "server_batch_profile": [["HTTP: send, wait for the server, read", 1.5]],
        },
        "compare": {
            "runs": {
                "workshop": [fake_run(1.5)],
                "baseline": [fake_run(2.0)],
                "workshop_no_freeze": [fake_run(1.8)],
                "workshop_default": [fake_run(1.0)],
            },
            "floor": [1.2],
            "n_runs": 30,
            "fill_seconds": 1.0,
            "args": ["--max-results", "30"],
        },
        "serving": {
            "workshop": {
                "startup": 4.0,
                1: [serving_block],
                100: [serving_block],
                "in_process": {
                    "n_jobs": None,
                    "n_estimators": 10,
                    **{f"pyfunc_{size}": 8.0 for size in (1, 100)},
                    **{f"sklearn_{size}": 2.0 for size in (1, 100)},
                    "largest": {"version": "4", "n_estimators": 200, "sklearn_1": 15.0},
                },
            },
            "baseline": {"startup": 4.0, 1: [serving_block], 100: [serving_block]},
        },
        "setup": {
            "steps": {"python -m venv": 3.0},
            "pip_cache_mb": 10,
            "packages": 90,
            "pip_sources": ["global.find-links='/somewhere/wheels'"],
        },
    }
