"""compare_runs.py: searching, ranking, paging and exporting runs of a store."""

import re

import mlflow
import pandas as pd
import pytest

import compare_runs
import workshop_store

# (run name, alpha, l1_ratio, rmse, r2): made-up scores, so the expected order is known.
WINE_LIKE_RUNS = [
    ("elasticnet_a0.5_l0.5", 0.5, 0.5, 0.733, 0.133),
    ("elasticnet_a0.1_l0.5", 0.1, 0.5, 0.642, 0.335),
    ("elasticnet_a1_l0.5", 1.0, 0.5, 0.787, -0.002),
    ("elasticnet_a0.1_l0.2", 0.1, 0.2, 0.648, 0.321),
    ("elasticnet_a0_l0", 0.0, 0.0, 0.651, 0.318),
]


@pytest.fixture
def wine_like_runs(tracking_store):
    """Five runs shaped like train_wine_elasticnet.py's, without training: {name: run_id}."""
    workshop_store.use_experiment(compare_runs.EXPERIMENT_NAME)
    run_ids = {}
    for name, alpha, l1_ratio, rmse, r2 in WINE_LIKE_RUNS:
        with mlflow.start_run(run_name=name) as run:
            mlflow.log_params({"alpha": alpha, "l1_ratio": l1_ratio, "seed": 42})
            mlflow.log_metrics({"rmse": rmse, "r2": r2, "mae": rmse * 0.8})
        run_ids[name] = run.info.run_id
    return run_ids


def names(result):
    return [run.info.run_name for run in result["runs"]]


def by_rmse(runs=WINE_LIKE_RUNS):
    return [name for name, *_ in sorted(runs, key=lambda run: run[3])]


def test_default_ranks_wine_runs_by_rmse(wine_like_runs, capsys):
    result = compare_runs.main([])
    out = capsys.readouterr().out
    assert names(result) == by_rmse()
    assert result["best_run"].info.run_id == wine_like_runs["elasticnet_a0.1_l0.5"]
    assert "ordered by metrics.rmse ASC (1 page of up to 1000)" in out
    # The experiment list: every experiment with its id.
    assert re.search(r"^  wine-quality-elasticnet +id \d+$", out, re.M)
    assert re.search(r"^  Default +id 0$", out, re.M)
    # The table: run name, short id, the params that differ, metrics to 3 decimals.
    header = next(line for line in out.splitlines() if "run name" in line).split()
    assert header == ["#", "run", "name", "run", "id", "alpha", "l1_ratio", "rmse", "mae", "r2"]
    first_row = next(line for line in out.splitlines() if line.lstrip().startswith("1 "))
    best_id = wine_like_runs["elasticnet_a0.1_l0.5"]
    assert first_row.split() == [
        "1",
        "elasticnet_a0.1_l0.5",
        best_id[:8],
        "0.1",
        "0.5",
        "0.642",
        "0.514",
        "0.335",
    ]
    assert "Same in every run: seed=42" in out
    assert f"Best run by metrics.rmse ASC: elasticnet_a0.1_l0.5 {best_id} rmse = 0.642" in out
    assert f"/runs/{best_id}" in out


def test_filter_and_order_by(wine_like_runs, capsys):
    result = compare_runs.main(["--filter", "metrics.rmse < 0.7"])
    assert names(result) == by_rmse([run for run in WINE_LIKE_RUNS if run[3] < 0.7])
    assert "3 runs matching 'metrics.rmse < 0.7'" in capsys.readouterr().out

    result = compare_runs.main(["--filter", "params.alpha = '0.1'", "--order-by", "metrics.r2 ASC"])
    assert names(result) == ["elasticnet_a0.1_l0.2", "elasticnet_a0.1_l0.5"]

    result = compare_runs.main(["--filter", "metrics.rmse > 5"])
    assert result["runs"] == [] and result["best_run"] is None
    assert "No runs to compare." in capsys.readouterr().out


def test_pages_are_fetched_up_to_max_results(wine_like_runs, monkeypatch, capsys):
    monkeypatch.setattr(compare_runs, "PAGE_SIZE", 2)
    result = compare_runs.main(["--max-results", "10"])
    out = capsys.readouterr().out
    assert names(result) == by_rmse()  # 2 + 2 + 1 runs, still in one ranking
    assert "5 runs, ordered by metrics.rmse ASC (3 pages of up to 2)" in out
    assert "More runs match" not in out

    result = compare_runs.main(["--max-results", "3"])
    out = capsys.readouterr().out
    assert names(result) == by_rmse()[:3]
    assert "(2 pages of up to 2)" in out
    assert "More runs match: only the first 3 are shown" in out


def test_csv_holds_every_matched_run(wine_like_runs, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    result = compare_runs.main(["--csv", str(path), "--filter", "metrics.rmse < 0.75"])
    table = pd.read_csv(path)
    assert list(table["run_name"]) == by_rmse()[:4]
    assert list(table["run_id"]) == [run.info.run_id for run in result["runs"]]
    assert {"status", "start_time", "metrics.rmse", "params.alpha", "tags.mlflow.runName"} <= set(
        table.columns
    )
    assert table["metrics.rmse"].tolist() == pytest.approx([0.642, 0.648, 0.651, 0.733])
    assert table.loc[0, "params.alpha"] == 0.1
    assert f"Wrote 4 runs with all their params, metrics and tags to {path}" in (
        capsys.readouterr().out
    )


def test_default_order_for_other_experiments(tracking_store, capsys):
    """Without --order-by: the first preferred metric the runs logged, else a rule by name."""
    workshop_store.connect()  # the fluent API below must log to this test's store
    client = mlflow.MlflowClient(tracking_store)
    cases = {
        "classifier": ({"accuracy": 0.9, "roc_auc": 0.95, "f1": 0.8}, "metrics.accuracy DESC"),
        "curves": ({"val_loss": 0.3, "zeta": 1.0}, "metrics.val_loss ASC"),
        "scores": ({"silhouette": 0.4}, "metrics.silhouette DESC"),
        "nothing_logged": ({}, "attributes.start_time DESC"),
    }
    for experiment, (metrics, expected) in cases.items():
        experiment_id = client.create_experiment(experiment)
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_metrics(metrics)
        assert compare_runs.default_order_by(client, experiment_id, "") == [expected]
    result = compare_runs.main(["--experiment", "nothing_logged"])
    assert len(result["runs"]) == 1 and result["best_run"] is not None


def test_demo_experiment_is_ranked_by_accuracy(tracking_store, capsys):
    import demo

    demo_run = demo.main(["--n-estimators", "3", "--max-depth", "2"])
    result = compare_runs.main(["--experiment", "demo-mlflow-artifacts"])
    out = capsys.readouterr().out
    assert [run.info.run_id for run in result["runs"]] == [demo_run["run_id"]]
    assert "ordered by metrics.accuracy DESC" in out
    assert f"accuracy = {demo_run['metrics']['accuracy']:.3f}" in out
    assert f"Its model: python load_model.py --model-uri {demo_run['model_uri']}" in out


def test_real_wine_runs(tracking_store, wine_csv, capsys):
    import train_wine_elasticnet

    runs = [
        train_wine_elasticnet.main(["--data", str(wine_csv), "--alpha", alpha])
        for alpha in ("1.0", "0.1")
    ]
    result = compare_runs.main([])
    out = capsys.readouterr().out
    best = min(runs, key=lambda run: run["metrics"]["rmse"])
    assert best["run_name"] == "elasticnet_a0.1_l0.5"  # less penalty fits this data better
    assert result["best_run"].info.run_id == best["run_id"]
    assert f"rmse = {best['metrics']['rmse']:.3f}" in out
    assert f"--model-uri {best['model_uri']}" in out


def test_sweep_children_ranked_and_parent_named(tracking_store, tmp_path, capsys):
    """Issue 3: the iris sweep works unchanged; its parent run has no accuracy to rank by."""
    import train_iris_sweep

    sweep = train_iris_sweep.main(["--grid", "1:1,5:2,10:3"])
    capsys.readouterr()
    chart = tmp_path / "iris.png"
    result = compare_runs.main(["--experiment", "iris_classification", "--plot", str(chart)])
    out = capsys.readouterr().out
    parent_name = mlflow.get_run(sweep["parent_run_id"]).info.run_name

    assert "ordered by metrics.accuracy DESC" in out
    ranked = [run for run in result["runs"] if "accuracy" in run.data.metrics]
    assert len(ranked) == 3 and len(result["runs"]) == 4
    accuracies = [run.data.metrics["accuracy"] for run in ranked]
    assert accuracies == sorted(accuracies, reverse=True)
    assert result["best_run"].data.metrics["accuracy"] == max(
        run["metrics"]["accuracy"] for run in sweep["runs"]
    )
    header = next(line for line in out.splitlines() if "run name" in line).split()
    assert header[5:] == [
        "parent",
        "max_depth",
        "n_estimators",
        "accuracy",
        "f1_score",
        "precision",
        "recall",
    ]
    for run in sweep["runs"]:
        row = next(line for line in out.splitlines() if run["run_name"] in line)
        assert parent_name in row
    assert (
        f"Not ranked, no metric 'accuracy': {parent_name} "
        f"({sweep['parent_run_id'][:8]}, finished, parent of 3 runs)" in out
    )
    assert f"Wrote the chart to {chart}" in out  # n_estimators and max_depth against accuracy


def test_unknown_experiment_lists_the_existing_ones(wine_like_runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--experiment", "wine-quality"])
    assert exit_info.value.code == (
        "There is no experiment named 'wine-quality'; "
        "the experiments are: 'Default', 'wine-quality-elasticnet'."
    )


def test_missing_default_experiment_says_how_to_create_it(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    assert "'Default'" in exit_info.value.code
    assert "run `python train_wine_elasticnet.py` to create it" in exit_info.value.code


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--filter", "metrics.rmse <"], "Invalid clause(s) in filter string"),
        (["--filter", "params.alpha = 0.5"], "Expected a quoted string value for parameter"),
        (["--filter", "metrics.rmse < 0.7", "--order-by", "rmse"], "Invalid attribute key 'rmse'"),
        (["--order-by", "metrics.rmse SIDEWAYS"], "Invalid ordering key"),
    ],
)
def test_invalid_filter_exits_2_with_mlflows_reason(wine_like_runs, capsys, flags, reason):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(flags)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    error_line = err.strip().splitlines()[-1]
    assert "error: MLflow cannot use this --filter or --order-by: " in error_line
    assert reason in error_line
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--max-results", "0"], "at least 1"), (["--max-results", "x"], "invalid")],
)
def test_bad_flags_exit_2(tracking_store, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_csv_into_missing_folder_is_one_sentence(tracking_store, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--csv", str(tmp_path / "nowhere" / "runs.csv")])
    assert exit_info.value.code.startswith("Cannot write --csv ")


def test_no_local_store_yet(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(workshop_store, "REPO_ROOT", tmp_path)  # a clone with no mlflow.db
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main([])
    assert "run `python train_wine_elasticnet.py` first" in exit_info.value.code
    assert not (tmp_path / "mlflow.db").exists()


def test_plot_draws_each_numeric_param_against_the_metric(wine_like_runs, tmp_path, capsys):
    path = tmp_path / "wine.png"
    result = compare_runs.main(["--plot", str(path)])
    assert f"Wrote the chart to {path}" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    fig = compare_runs.params_vs_metric_figure(result["runs"], "rmse", True, "title")
    axes = fig.axes
    assert [ax.get_xlabel() for ax in axes] == ["alpha", "l1_ratio"]
    assert axes[0].get_ylabel() == "rmse (lower is better)"
    assert axes[0].get_xscale() == "linear"  # alpha includes 0: no log scale
    best_dot = axes[0].collections[1].get_offsets()
    assert best_dot.tolist() == [[0.1, 0.642]]


def test_plot_needs_a_numeric_param_that_varies(wine_like_runs, tmp_path, capsys):
    path = tmp_path / "none.png"
    compare_runs.main(["--filter", "params.alpha = '0.5'", "--plot", str(path)])
    assert "No chart: no numeric param differs" in capsys.readouterr().out
    assert not path.exists()
    with pytest.raises(SystemExit) as exit_info:
        compare_runs.main(["--plot", str(tmp_path / "nowhere" / "chart.png")])
    assert exit_info.value.code.startswith("Cannot write --plot ")
