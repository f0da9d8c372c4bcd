"""compare_runs.py: ranking, filtering, paging, the CSV and the chart, and its one-line errors."""

import contextlib
import io
import re
import shutil

import mlflow
import pandas as pd
import pytest
from conftest import copy_lesson, load_lesson, run_script, sqlite_uri

# The wine lesson's tries, and their rmse with the default split (README, lesson 2).
WINE_TRIES = [("0.5", "0.5"), ("0.1", "0.5"), ("1", "0.5"), ("0.1", "0.2"), ("0.01", "0.5")]
BY_RMSE = [
    ("elasticnet_a0.01_l0.5", 0.625),
    ("elasticnet_a0.1_l0.2", 0.631),
    ("elasticnet_a0.1_l0.5", 0.642),
    ("elasticnet_a0.5_l0.5", 0.733),
    ("elasticnet_a1_l0.5", 0.787),
]
NAMES_BY_RMSE = [name for name, _ in BY_RMSE]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template):
    """One store for the module: five real wine runs, a sweep-like experiment (a parent
    without the metric, two children with it), and an experiment of the participant's own."""
    folder = tmp_path_factory.mktemp("compare")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    uri = sqlite_uri(folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        wine = load_lesson("train_wine_elasticnet.py")
        results = {}
        with contextlib.redirect_stdout(io.StringIO()):
            for alpha, l1_ratio in WINE_TRIES:
                result = wine.main(["--alpha", alpha, "--l1-ratio", l1_ratio])
                results[f"elasticnet_a{alpha}_l{l1_ratio}"] = result
        mlflow.set_experiment("iris_classification")
        with mlflow.start_run(run_name="sweep_parent"):
            for n_estimators, max_depth, accuracy in [(10, 2, 0.911), (50, 3, 0.956)]:
                with mlflow.start_run(run_name=f"rf_{n_estimators}_{max_depth}", nested=True):
                    mlflow.log_params({"n_estimators": n_estimators, "max_depth": max_depth})
                    mlflow.log_metrics({"accuracy": accuracy, "f1_score": accuracy - 0.01})
        mlflow.set_experiment("my-experiment")
        with mlflow.start_run(run_name="mine"):
            mlflow.log_metrics({"val_loss": 0.3, "zeta": 1.0})
    return {"uri": uri, "folder": folder, "wine": results}


@pytest.fixture
def compare(store, monkeypatch):
    """compare_runs.py, imported as `python compare_runs.py` would be with the module's store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return load_lesson("compare_runs.py")


def names(runs):
    return [run.info.run_name for run in runs]


def table(out):
    """The printed ranking: its header and its rows, split into words."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "run", "name"])
    rows = [line.split() for line in lines[start + 1 :] if re.match(r"^ *\d+ ", line)]
    return lines[start].split(), rows


def png_width(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    return int.from_bytes(data[16:20], "big")  # the IHDR chunk: width, then height


def test_default_ranks_the_wine_runs_by_rmse(store, compare, capsys):
    result = compare.main([])
    out = capsys.readouterr().out
    best = store["wine"]["elasticnet_a0.01_l0.5"]
    assert names(result["runs"]) == names(result["ranked"]) == NAMES_BY_RMSE
    assert result["best_run"].info.run_id == best["run_id"]
    experiment_id = result["experiment"].experiment_id
    lines = out.splitlines()
    assert lines[:6] == [
        "Experiments in this tracking store:",
        "  Default                          id 0",
        f"  iris_classification              id {int(experiment_id) + 1}",
        f"  my-experiment                    id {int(experiment_id) + 2}",
        f"  wine-quality-elasticnet          id {experiment_id}",
        "",
    ]
    assert lines[6] == (
        "Experiment 'wine-quality-elasticnet': 5 runs, ordered by metrics.rmse ASC "
        "(1 page of up to 1000)"
    )
    # The params that differ (test_size and seed do not), the ranking metric first.
    header, rows = table(out)
    assert header == ["#", "run", "name", "run", "id", "alpha", "l1_ratio", "rmse", "mae", "r2"]
    assert [row[1] for row in rows] == NAMES_BY_RMSE
    assert [float(row[5]) for row in rows] == [rmse for _, rmse in BY_RMSE]
    assert rows[0][:7] == ["1", "elasticnet_a0.01_l0.5", best["run_id"][:8], "0.01", "0.5"] + [
        "0.625",
        "0.502",
    ]
    assert "Not ranked" not in out
    assert lines[-4:] == [
        "",
        f"Best run by metrics.rmse ASC: elasticnet_a0.01_l0.5 {best['run_id']} rmse = 0.625",
        f"Its model: python load_model.py --model-uri {best['model_uri']}",
        f"See it:    http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{best['run_id']}"
        "?workflowType=machine_learning",
    ]


def test_filter_metric_and_order(compare, capsys):
    result = compare.main(["--filter", "metrics.rmse < 0.7"])
    assert names(result["runs"]) == NAMES_BY_RMSE[:3]
    assert "3 runs matching 'metrics.rmse < 0.7', ordered by" in capsys.readouterr().out

    result = compare.main(["--metric", "r2", "--order", "desc"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == NAMES_BY_RMSE  # here r2 falls as rmse rises
    assert "ordered by metrics.r2 DESC" in out
    assert "Best run by metrics.r2 DESC: elasticnet_a0.01_l0.5 " in out
    assert table(out)[0][5:] == ["alpha", "l1_ratio", "r2", "mae", "rmse"]

    result = compare.main(["--filter", "params.alpha = '0.1'", "--order", "DESC"])
    assert names(result["runs"]) == ["elasticnet_a0.1_l0.5", "elasticnet_a0.1_l0.2"]  # worst first


def test_no_matching_runs_and_a_metric_nobody_logged(compare, capsys):
    result = compare.main(["--filter", "metrics.rmse > 5"])
    out = capsys.readouterr().out
    assert result["runs"] == [] and result["best_run"] is None
    assert "0 runs matching 'metrics.rmse > 5'" in out
    assert out.endswith("No runs to compare: none has a metric 'rmse' (metrics logged: none).\n")

    result = compare.main(["--metric", "rsme"])
    out = capsys.readouterr().out
    assert len(result["runs"]) == 5 and result["best_run"] is None
    assert out.endswith(
        "No runs to compare: none has a metric 'rsme' (metrics logged: mae, r2, rmse).\n"
    )


def test_pages_are_fetched_up_to_max_results(compare, capsys):
    compare.PAGE_SIZE = 2
    result = compare.main(["--max-results", "10"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == NAMES_BY_RMSE  # 2 + 2 + 1 runs, still one ranking
    assert "5 runs, ordered by metrics.rmse ASC (3 pages of up to 2)" in out
    assert "More runs match" not in out

    compare.main(["--max-results", "5"])
    out = capsys.readouterr().out
    assert "5 runs, ordered by metrics.rmse ASC (3 pages of up to 2)" in out
    assert "More runs match" not in out  # exactly all of them: the store has no more

    result = compare.main(["--max-results", "3"])
    out = capsys.readouterr().out
    assert names(result["runs"]) == NAMES_BY_RMSE[:3]
    assert "3 runs, ordered by metrics.rmse ASC (2 pages of up to 2)" in out
    assert "More runs match: only the first 3 are shown (see --max-results)." in out


def test_csv_holds_every_matched_run(compare, tmp_path, capsys):
    path = tmp_path / "runs.csv"
    result = compare.main(["--csv", str(path), "--filter", "metrics.rmse < 0.75"])
    assert f"Wrote 4 runs with all their params, metrics and tags to {path}\n" in (
        capsys.readouterr().out
    )
    runs = pd.read_csv(path)
    assert list(runs["run_id"]) == [run.info.run_id for run in result["runs"]]
    assert list(runs["tags.mlflow.runName"]) == NAMES_BY_RMSE[:4]
    assert runs["metrics.rmse"].round(3).tolist() == [rmse for _, rmse in BY_RMSE[:4]]
    assert runs["params.alpha"].tolist() == [0.01, 0.1, 0.1, 0.5]
    expected = {"status", "start_time", "metrics.r2", "metrics.mae", "params.l1_ratio"}
    assert expected <= set(runs.columns)


def test_plot_draws_each_numeric_param_against_the_metric(compare, tmp_path, capsys):
    path = tmp_path / "wine.png"
    compare.main(["--plot", str(path)])
    assert f"Wrote the chart to {path}\n" in capsys.readouterr().out
    assert png_width(path) == 900  # two panels, alpha and l1_ratio: (1 + 4 * 2) inches, 100 dpi

    one_run = tmp_path / "one.png"
    compare.main(["--filter", "params.alpha = '0.5'", "--plot", str(one_run)])
    out = capsys.readouterr().out
    assert "No chart: no numeric param differs between the ranked runs.\n" in out
    assert not one_run.exists()


def test_a_sweep_parent_without_the_metric_is_named_below_the_table(compare, capsys):
    result = compare.main(["--experiment", "iris_classification"])
    out = capsys.readouterr().out
    assert names(result["ranked"]) == ["rf_50_3", "rf_10_2"]
    assert "3 runs, ordered by metrics.accuracy DESC" in out
    assert table(out)[0][5:] == ["max_depth", "n_estimators", "accuracy", "f1_score"]
    assert "\nNot ranked, no metric 'accuracy': sweep_parent\n" in out
    assert "Its model" not in out  # these runs logged none


def test_an_experiment_without_a_default_metric_needs_one(compare, capsys):
    with pytest.raises(SystemExit) as stopped:
        compare.main(["--experiment", "my-experiment"])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.endswith(
        "error: 'my-experiment' has no default metric: pass --metric NAME\n"
    )
    assert captured.out == ""
    result = compare.main(["--experiment", "my-experiment", "--metric", "val_loss"])
    assert names(result["ranked"]) == ["mine"]
    assert "ordered by metrics.val_loss ASC" in capsys.readouterr().out


def test_an_unknown_experiment_is_one_sentence_naming_those_that_exist(compare, capsys):
    with pytest.raises(SystemExit) as stopped:
        compare.main(["--experiment", "wine"])
    assert stopped.value.code == (
        "There is no experiment named 'wine'; the experiments are: 'Default', "
        "'iris_classification', 'my-experiment', 'wine-quality-elasticnet'."
    )
    assert capsys.readouterr().out == ""


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
def test_what_mlflow_cannot_parse_is_one_line_exit_2(compare, capsys, flags, reason):
    with pytest.raises(SystemExit) as stopped:
        compare.main(flags)
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert (
        captured.err.strip()
        .splitlines()[-1]
        .endswith(f"error: MLflow cannot use this --filter or --metric: {reason}")
    )
    assert captured.out == ""


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-results", "0"], "--max-results must be at least 1"),
        (["--max-results", "x"], "argument --max-results: invalid int value: 'x'"),
        (["--order", "SIDEWAYS"], "argument --order: invalid choice: 'SIDEWAYS'"),
        (["--plot", "chart.jpg"], "--plot: the chart is a PNG file: end chart.jpg in .png"),
        (["--csv", "nowhere/runs.csv"], "cannot write nowhere/runs.csv: its folder does not exist"),
        (["--plot", "nowhere/c.png"], "cannot write nowhere/c.png: its folder does not exist"),
    ],
)
def test_a_bad_flag_is_one_line_exit_2(compare, capsys, flags, message):
    with pytest.raises(SystemExit) as stopped:
        compare.main(flags)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_copied_alone_without_a_store_it_says_so_and_creates_none(tmp_path, monkeypatch):
    """A fresh folder, no MLFLOW_TRACKING_URI: one sentence, and no mlflow.db made."""
    lesson = copy_lesson("compare_runs.py", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    with pytest.raises(SystemExit) as stopped:
        load_lesson(lesson).main([])
    assert stopped.value.code == (
        "There are no runs yet: run `python train_wine_elasticnet.py` first."
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["compare_runs.py"]


def test_as_a_participant_runs_it(store, tmp_path):
    """From a copy in an empty folder, against the module's store: the README's command with
    its CSV and chart, then a filter MLflow cannot parse (argparse's lines, exit 2)."""
    lesson = copy_lesson("compare_runs.py", tmp_path)
    env = {"MLFLOW_TRACKING_URI": store["uri"]}
    flags = ["--filter", "metrics.rmse < 0.7", "--csv", "wine_runs.csv", "--plot", "wine_runs.png"]
    done = run_script(str(lesson), *flags, cwd=tmp_path, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert "3 runs matching 'metrics.rmse < 0.7'" in done.stdout
    assert len(pd.read_csv(tmp_path / "wine_runs.csv")) == 3
    assert png_width(tmp_path / "wine_runs.png") == 900

    refused = run_script(str(lesson), "--filter", "params.alpha = 0.1", cwd=tmp_path, env=env)
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.splitlines()[-1] == (
        "compare_runs.py: error: MLflow cannot use this --filter or --metric: Expected a quoted "
        "string value for parameter (e.g. 'my-value'). Got value 0.1"
    )


def test_a_best_run_whose_model_upload_was_stopped(tracking_store, capsys):
    """What a Ctrl+C while the wine lesson logs its model leaves: a FAILED run with its
    metrics, and a PENDING model without files. The best run's model is named as such."""
    client = mlflow.MlflowClient(tracking_store)
    experiment_id = client.create_experiment("wine-quality-elasticnet")
    stopped = client.create_run(experiment_id, run_name="elasticnet_a0.01_l0.5")
    client.log_metric(stopped.info.run_id, "rmse", 0.625)
    model = client.create_logged_model(experiment_id, "model", stopped.info.run_id)
    client.set_terminated(stopped.info.run_id, "FAILED")
    load_lesson("compare_runs.py").main([])
    out = capsys.readouterr().out
    assert f"\nIts model {model.model_id} is PENDING: its upload did not finish.\n" in out
    assert "load_model.py" not in out
