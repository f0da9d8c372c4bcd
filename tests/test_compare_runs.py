"""compare_runs.py: ranking, filtering, paging, exporting and its one-sentence errors."""

import errno
import os
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO_ROOT, free_port, require, run_script

import compare_runs
import plumbing

# (run name, alpha, l1_ratio, rmse, r2): made-up scores, so the expected order is known.
WINE_LIKE_RUNS = [
    ("elasticnet_a0.5_l0.5", 0.5, 0.5, 0.733, 0.133),
    ("elasticnet_a0.1_l0.5", 0.1, 0.5, 0.642, 0.335),
    ("elasticnet_a1_l0.5", 1.0, 0.5, 0.787, -0.002),
    ("elasticnet_a0.1_l0.2", 0.1, 0.2, 0.648, 0.321),
    ("elasticnet_a0_l0", 0.0, 0.0, 0.651, 0.318),
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def wine_like_runs(tracking_store):
    """Five runs shaped like train_wine_elasticnet.py's, without training: {name: run_id}."""
    plumbing.use_experiment(compare_runs.EXPERIMENT_NAME)
    run_ids = {}
    for name, alpha, l1_ratio, rmse, r2 in WINE_LIKE_RUNS:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"alpha": alpha, "l1_ratio": l1_ratio, "seed": 42})
            mlflow.log_metrics({"rmse": rmse, "r2": r2, "mae": rmse * 0.8})
        run_ids[name] = run.info.run_id
    return run_ids


def names(runs):
    return [run.info.run_name for run in runs]


def by_rmse(runs=WINE_LIKE_RUNS):
    return [name for name, *_ in sorted(runs, key=lambda run: run[3])]


def table_lines(out):
    """The printed table: its header and its rows, split into cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("#  "))
    rows = [line.split() for line in lines[start + 1 :] if re.match(r"^ *\d+ ", line)]
    return lines[start].split(), rows


def png_width(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big")  # the IHDR chunk: width, then height


def test_default_ranks_wine_runs_by_rmse(wine_like_runs, capsys):
    result = compare_runs.main([])
    out = capsys.readouterr().out
    best_id = wine_like_runs["elasticnet_a0.1_l0.5"]
    assert names(result["runs"]) == names(result["ranked"]) == by_rmse()
    assert result["best_run"].info.run_id == best_id
    assert out.startswith("Experiments in this tracking store:\n  Default ")
    assert re.search(r"^  wine-quality-elasticnet +id \d+$", out, re.M)
    assert (
        "\nExperiment 'wine-quality-elasticnet': 5 runs, ordered by metrics.rmse ASC "
        "(1 page of up to 1000)\n" in out
    )
    # The table: the params that differ (seed is 42 everywhere), the ranking metric first.
    header, rows = table_lines(out)
    assert header == ["#", "run", "name", "run", "id", "alpha", "l1_ratio", "rmse", "mae", "r2"]
    assert [row[1] for row in rows] == by_rmse()
    assert rows[0] == ["1", "elasticnet_a0.1_l0.5", best_id[:8], "0.1", "0.5"] + [
        "0.642",
        "0.514",
        "0.335",
    ]
    assert "Not ranked" not in out
    assert f"\nBest run by metrics.rmse ASC: elasticnet_a0.1_l0.5 {best_id} rmse = 0.642\n" in out
    assert f"/runs/{best_id}" in out  # plumbing.where_to_look: how to see it in the UI


def test_filter_metric_and_order(wine_like_runs, capsys):
    result = compare_runs.main(["--filter", "metrics.rmse < 0.7"])
    assert names(result["runs"]) == by_rmse([run for run in WINE_LIKE_RUNS if run[3] < 0.7])
    assert "3 runs matching 'metrics.rmse < 0.7', ordered by" in capsys.readouterr().out

    result = compare_runs.main(["--metric", "r2", "--order", "desc"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == by_rmse()  # here r2 falls as rmse rises
    assert "ordered by metrics.r2 DESC" in out
    assert "Best run by metrics.r2 DESC: elasticnet_a0.1_l0.5 " in out
    assert table_lines(out)[0][5:] == ["alpha", "l1_ratio", "r2", "mae", "rmse"]

    result = compare_runs.main(["--filter", "params.alpha = '0.1'", "--order", "DESC"])
    assert names(result["runs"]) == ["elasticnet_a0.1_l0.2", "elasticnet_a0.1_l0.5"]  # worst first


def test_no_matching_runs_and_an_unlogged_metric(wine_like_runs, capsys):
    result = compare_runs.main(["--filter", "metrics.rmse > 5"])
    out = capsys.readouterr().out
    assert result["runs"] == [] and result["best_run"] is None
    assert "0 runs matching 'metrics.rmse > 5'" in out
    assert out.endswith("No runs to compare: none has a metric 'rmse' (metrics logged: none).\n")

    result = compare_runs.main(["--metric", "rsme"])
    out = capsys.readouterr().out
    assert len(result["runs"]) == 5 and result["best_run"] is None
    assert out.endswith(
        "No runs to compare: none has a metric 'rsme' (metrics logged: mae, r2, rmse).\n"
    )


def test_pages_are_fetched_up_to_max_results(wine_like_runs, monkeypatch, capsys):
    monkeypatch.setattr(compare_runs, "PAGE_SIZE", 2)
    result = compare_runs.main(["--max-results", "10"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == by_rmse()  # 2 + 2 + 1 runs, still one ranking
    assert "5 runs, ordered by metrics.rmse ASC (3 pages of up to 2)" in out
    assert "More runs match" not in out

    compare_runs.main(["--max-results", "5"])
    out = capsys.readouterr().out
    assert "5 runs, ordered by metrics.rmse ASC (3 pages of up to 2)" in out
    assert "More runs match" not in out  # exactly all of them: the store has no more

    result = compare_runs.main(["--max-results", "3"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == by_rmse()[:3]
    assert "3 runs, ordered by metrics.rmse ASC (2 pages of up to 2)" in out
    assert "More runs match: only the first 3 are shown (see --max-results)." in out


def test_csv_holds_every_matched_run(wine_like_runs, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    result = compare_runs.main(["--csv", str(path), "--filter", "metrics.rmse < 0.75"])
    assert f"Wrote 4 runs with all their params, metrics and tags to {path}" in (
        capsys.readouterr().out
    )
    table = pd.read_csv(path)
    assert len(table) == 4
    assert list(table["run_id"]) == [run.info.run_id for run in result["runs"]]
    assert list(table["tags.mlflow.runName"]) == by_rmse()[:4]
    expected = {"run_id", "status", "start_time", "end_time", "tags.mlflow.runName"}
    expected |= {f"metrics.{name}" for name in ("rmse", "r2", "mae")}
    expected |= {f"params.{name}" for name in ("alpha", "l1_ratio", "seed")}
    assert expected <= set(table.columns)
    assert table["metrics.rmse"].tolist() == pytest.approx([0.642, 0.648, 0.651, 0.733])
    assert table["params.alpha"].tolist() == [0.1, 0.1, 0.0, 0.5]


def test_a_csv_write_that_fails_is_one_sentence(wine_like_runs, tracking_store, tmp_path, capsys):
    """A full disk: Linux's /dev/full passes the flag check, then refuses every write (ENOSPC)."""
    require(Path("/dev/full").exists(), "there is no /dev/full (a device that is always full)")
    sentence = f"Could not write /dev/full: {os.strerror(errno.ENOSPC)}."
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--csv", "/dev/full"])
    assert exit_info.value.code == sentence
    assert "Wrote" not in capsys.readouterr().out

    script, env = str(REPO_ROOT / "compare_runs.py"), {"MLFLOW_TRACKING_URI": tracking_store}
    done = run_script(script, "--csv", "/dev/full", cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr) == (1, sentence + "\n")

    # A folder removed after the flag check: the same write, one sentence too.
    path = tmp_path / "removed" / "runs.csv"
    with pytest.raises(SystemExit) as exit_info:
        plumbing.write_csv(pd.DataFrame({"run_id": ["a"]}), path)
    assert exit_info.value.code.startswith(f"Could not write {path}: ")
    assert "non-existent directory" in exit_info.value.code and not path.parent.exists()


def test_plot_draws_each_numeric_param_against_the_metric(wine_like_runs, tmp_path, capsys):
    path = tmp_path / "wine.png"
    compare_runs.main(["--plot", str(path)])
    assert f"Wrote the chart to {path}\n" in capsys.readouterr().out
    assert png_width(path) == 900  # two panels, alpha and l1_ratio: (1 + 4 * 2) inches at 100 dpi

    one_run = tmp_path / "none.png"
    compare_runs.main(["--filter", "params.alpha = '0.5'", "--plot", str(one_run)])
    assert "No chart: no numeric param differs between the ranked runs." in (
        capsys.readouterr().out
    )
    assert not one_run.exists()


def test_experiment_without_a_default_metric_needs_one(wine_like_runs, capsys):
    mlflow.set_experiment("my-experiment")
    with mlflow.start_run(run_name="mine"):
        mlflow.log_metrics({"val_loss": 0.3, "zeta": 1.0})
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--experiment", "my-experiment"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.endswith(
        "error: 'my-experiment' has no default metric: pass --metric NAME\n"
    )
    result = compare_runs.main(["--experiment", "my-experiment", "--metric", "val_loss"])
    assert names(result["ranked"]) == ["mine"]
    assert "ordered by metrics.val_loss ASC" in capsys.readouterr().out


def test_real_wine_runs(tracking_store, client, wine_csv, capsys):
    import train_wine_elasticnet

    runs = [
        train_wine_elasticnet.main(["--data", str(wine_csv), "--alpha", alpha])
        for alpha in ("1.0", "0.1")
    ]
    capsys.readouterr()
    result = compare_runs.main([])
    out = capsys.readouterr().out
    best = min(runs, key=lambda run: run["metrics"]["rmse"])
    assert best is runs[1]  # less penalty fits this data better
    assert result["best_run"].info.run_id == best["run_id"]
    assert table_lines(out)[0][5:] == ["alpha", "rmse", "mae", "r2"]
    assert f"rmse = {best['metrics']['rmse']:.3f}\n" in out
    assert f"\nIts model: python load_model.py --model-uri {best['model_uri']}\n" in out


def test_demo_experiment_is_ranked_by_accuracy(tracking_store, capsys):
    import demo

    demo_run = demo.main(["--n-estimators", "3", "--max-depth", "2"])
    capsys.readouterr()
    result = compare_runs.main(["--experiment", "demo-mlflow-artifacts"])
    out = capsys.readouterr().out
    assert [run.info.run_id for run in result["ranked"]] == [demo_run["run_id"]]
    assert "ordered by metrics.accuracy DESC" in out
    header, _ = table_lines(out)
    assert header[5:] == ["accuracy", "f1_score", "precision", "recall", "roc_auc"]
    assert f"accuracy = {demo_run['metrics']['accuracy']:.3f}\n" in out
    assert f"Its model: python load_model.py --model-uri {demo_run['model_uri']}" in out


def test_sweep_children_ranked_and_parent_named(tracking_store, client, tmp_path, capsys):
    """The parent run of a sweep has no accuracy of its own: it is named below the table."""
    import train_iris_sweep

    sweep = train_iris_sweep.main(["--grid", "1:1,5:2,10:3"])
    capsys.readouterr()
    chart = tmp_path / "iris.png"
    result = compare_runs.main(["--experiment", "iris_classification", "--plot", str(chart)])
    out = capsys.readouterr().out
    parent_name = client.get_run(sweep["parent_run_id"]).info.run_name

    assert "4 runs, ordered by metrics.accuracy DESC" in out
    assert len(result["ranked"]) == 3
    accuracies = [run.data.metrics["accuracy"] for run in result["ranked"]]
    assert accuracies == sorted(accuracies, reverse=True)
    assert accuracies[0] == max(run["metrics"]["accuracy"] for run in sweep["runs"])
    header, rows = table_lines(out)
    assert header[5:] == ["max_depth", "n_estimators", "accuracy", "f1_score", "precision"] + [
        "recall"
    ]
    assert len(rows) == 3
    assert f"\nNot ranked, no metric 'accuracy': {parent_name}\n" in out
    assert png_width(chart) == 900  # n_estimators and max_depth against accuracy


def test_unknown_experiment_lists_the_existing_ones(wine_like_runs):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--experiment", "wine-quality"])
    assert exit_info.value.code == (
        "There is no experiment named 'wine-quality'; "
        "the experiments are: 'Default', 'wine-quality-elasticnet'."
    )


def test_missing_default_experiment_says_how_to_create_it(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    assert exit_info.value.code == (
        "There is no experiment named 'wine-quality-elasticnet'; the experiments are: "
        "'Default' (run `python train_wine_elasticnet.py` to create it)."
    )


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--filter", "metrics.rmse <"], "Invalid clause(s) in filter string: 'metrics.rmse', '<'"),
        (
            ["--filter", "params.alpha = 0.5"],
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 0.5",
        ),
        (
            ["--metric", "root mean"],
            "Invalid order_by clause 'metrics.root mean ASC'. Could not be parsed.",
        ),
    ],
)
def test_what_mlflow_cannot_parse_exits_2_with_its_reason(wine_like_runs, capsys, flags, reason):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(flags)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    error_line = captured.err.strip().splitlines()[-1]
    assert error_line.endswith(f"error: MLflow cannot use this --filter or --metric: {reason}")
    assert reason in error_line
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-results", "0"], "argument --max-results: must be a whole number of at least 1"),
        (["--max-results", "x"], "argument --max-results: must be a number, got 'x'"),
        (["--order", "SIDEWAYS"], "argument --order: invalid choice: 'SIDEWAYS'"),
        (
            ["--csv", "nowhere/runs.csv"],
            "argument --csv: cannot write nowhere/runs.csv: its folder",
        ),
        (["--plot", "nowhere/chart.png"], "argument --plot: cannot write nowhere/chart.png: its"),
        (
            ["--plot", "chart.jpg"],
            "argument --plot: the chart is a PNG file: end chart.jpg in .png",
        ),
        (["--plot", "chart"], "argument --plot: the chart is a PNG file: end chart in .png"),
        (["--csv", "."], "argument --csv: cannot write .: it is a folder"),
    ],
)
def test_bad_flags_exit_2(tracking_store, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_no_local_store_yet(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(plumbing.store, "REPO_ROOT", tmp_path)  # a fresh clone: no mlflow.db
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    assert exit_info.value.code == (
        "There are no runs yet: run `python train_wine_elasticnet.py` first."
    )
    assert not (tmp_path / "mlflow.db").exists()


def test_stopped_server_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    message = exit_info.value.code
    assert message.startswith(f"Could not use the MLflow tracking store at {uri}: nothing answers")
    assert "\n" not in message


@pytest.mark.parametrize("uri", ["foo://bar", "some/folder"])
def test_a_tracking_uri_of_no_known_form_is_one_sentence(monkeypatch, tmp_path, uri):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    assert exit_info.value.code.startswith(f"MLFLOW_TRACKING_URI={uri} is not a tracking store")


def test_readme_commands_as_a_participant_types_them(wine_like_runs, tracking_store, tmp_path):
    """The commands exactly as the README prints them, in a shell, from a working folder."""
    script = str(REPO_ROOT / "compare_runs.py")
    flags = ["--filter", "metrics.rmse < 0.7", "--csv", "wine_runs.csv", "--plot", "wine_runs.png"]
    env = {"MLFLOW_TRACKING_URI": tracking_store}
    done = run_script(script, *flags, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "3 runs matching 'metrics.rmse < 0.7'" in done.stdout
    assert "Best run by metrics.rmse ASC: elasticnet_a0.1_l0.5 " in done.stdout
    assert len(pd.read_csv(tmp_path / "wine_runs.csv")) == 3
    assert png_width(tmp_path / "wine_runs.png") == 900

    done = run_script(script, "--experiment", "wine", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr == (
        "There is no experiment named 'wine'; "
        "the experiments are: 'Default', 'wine-quality-elasticnet'.\n"
    )
