"""train_wine_elasticnet.py: runs to compare, the data and held-out rows as inputs."""

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import WINE_CSV, all_runs, run_script
from test_plumbing import WineServer, write_csv

import train_wine_elasticnet as wine_script

COLUMNS = [*wine_script.FEATURES, "quality"]


# %%
# The real data (data/winequality-red.csv): what a run records


@pytest.fixture
def wine_result(tracking_store):
    return wine_script.main(["--alpha", "0.1", "--l1-ratio", "0.2"])


def test_run_records_params_tags_and_metrics(wine_result, client):
    run = client.get_run(wine_result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "elasticnet_a0.1_l0.2"
    assert client.get_experiment(run.info.experiment_id).name == "wine-quality-elasticnet"
    assert run.data.params == {"alpha": "0.1", "l1_ratio": "0.2", "test_size": "0.25", "seed": "42"}
    assert run.data.tags["model_type"] == "ElasticNet"
    assert run.data.tags["dataset"] == "UCI wine quality (red)"
    metrics = run.data.metrics
    assert set(metrics) == {"rmse", "r2", "mae"}
    assert metrics == pytest.approx(wine_result["metrics"])
    # Measured: rmse 0.631, r2 0.356, mae 0.512. A linear model on this data
    # explains about a third of the variance; far outside means a broken pipeline.
    assert 0.58 <= metrics["rmse"] <= 0.70
    assert 0.25 <= metrics["r2"] <= 0.45
    assert 0.45 <= metrics["mae"] <= 0.58
    assert metrics["mae"] < metrics["rmse"]


def dataset_inputs(run):
    """The run's datasets by context: {"training": Dataset, "evaluation": Dataset}."""
    return {
        {tag.key: tag.value for tag in item.tags}["mlflow.data.context"]: item.dataset
        for item in run.inputs.dataset_inputs
    }


def test_training_and_held_out_wines_are_recorded(wine_result, client):
    run = client.get_run(wine_result["run_id"])
    inputs = dataset_inputs(run)
    assert set(inputs) == {"training", "evaluation"}
    for context, rows in (("training", 1199), ("evaluation", 400)):
        dataset = inputs[context]
        assert dataset.name == f"winequality-red_{context}"
        assert dataset.source_type == "local"
        assert json.loads(dataset.source) == {"uri": WINE_CSV.resolve().as_posix()}
        assert len(dataset.digest) >= 8
        assert json.loads(dataset.profile)["num_rows"] == rows
        columns = {c["name"]: c["type"] for c in json.loads(dataset.schema)["mlflow_colspec"]}
        assert columns == dict.fromkeys(COLUMNS, "double")  # quality too: float, no MLflow hint
    held_out = mlflow.load_table("held_out_rows.json", run_ids=[run.info.run_id])
    assert list(held_out.columns) == COLUMNS and len(held_out) == 400
    model = mlflow.sklearn.load_model(wine_result["model_uri"])
    errors = model.predict(held_out[wine_script.FEATURES]) - held_out["quality"]
    assert abs(errors).mean() == pytest.approx(wine_result["metrics"]["mae"])


def test_model_loads_and_predicts_one_score_per_wine(wine_result):
    model_uri = wine_result["model_uri"]
    info = mlflow.models.get_model_info(model_uri)
    assert info.run_id == wine_result["run_id"]
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.signature.inputs.input_names() == wine_script.FEATURES
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    assert "mlflow==3.17.2" in requirements
    assert any(r.startswith("skops==") for r in requirements)

    wines = pd.read_csv(WINE_CSV).head(25)
    predictions = mlflow.pyfunc.load_model(model_uri).predict(wines[wine_script.FEATURES])
    assert len(predictions) == 25
    assert all(3 <= p <= 8 for p in predictions)


def test_same_seed_same_metrics_and_two_alphas_two_runs(tracking_store, client):
    first = wine_script.main(["--seed", "7"])
    again = wine_script.main(["--seed", "7"])
    small_alpha = wine_script.main(["--seed", "7", "--alpha", "0.01"])
    assert first["metrics"] == again["metrics"]
    assert len({first["run_id"], again["run_id"], small_alpha["run_id"]}) == 3
    runs = all_runs(client)
    assert len(runs) == 3
    assert len({run.info.experiment_id for run in runs}) == 1
    assert {run.info.run_name for run in runs} == {"elasticnet_a0.5_l0.5", "elasticnet_a0.01_l0.5"}
    # The lesson of comparing runs: a lighter penalty fits this data better.
    assert small_alpha["metrics"]["rmse"] < first["metrics"]["rmse"]
    assert small_alpha["metrics"]["r2"] > 0.3 > first["metrics"]["r2"]
    digests = {dataset_inputs(run)["training"].digest for run in runs}
    assert len(digests) == 1  # the same rows, the same digest


def test_prints_run_metrics_and_where_to_look(tracking_store, capsys):
    result = wine_script.main(["--alpha", "0"])
    out = capsys.readouterr().out
    assert f"Run {result['run_id']} (elasticnet_a0_l0.5)" in out
    assert f"rmse  {result['metrics']['rmse']:.3f}" in out
    assert result["model_uri"] in out
    assert "python compare_runs.py" in out
    assert f"/runs/{result['run_id']}" in out


# %%
# Other data: a small file, UCI's semicolon form over HTTP


def test_trains_on_a_small_file(tracking_store, client, tmp_path):
    every_eighth_wine = pd.read_csv(WINE_CSV).iloc[::8]  # 200 real wines
    small_csv = write_csv(every_eighth_wine, tmp_path / "wine-semicolon.csv", ";")
    result = wine_script.main(["--data", str(small_csv), "--alpha", "0.05"])
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "0.05"
    assert 0 < run.data.metrics["rmse"] < 1.5
    assert run.data.metrics["r2"] > 0  # better than guessing the mean quality
    dataset = dataset_inputs(run)["training"]
    assert json.loads(dataset.source) == {"uri": small_csv.resolve().as_posix()}
    assert json.loads(dataset.profile)["num_rows"] == 150  # 75% of 200


def test_reads_the_data_from_a_url(tracking_store, client, tmp_path):
    semicolon_csv = write_csv(pd.read_csv(WINE_CSV), tmp_path / "uci.csv", ";")
    with WineServer(semicolon_csv.read_bytes()) as server:
        from_url = wine_script.main(["--data", server.url, "--alpha", "0.1"])
    from_file = wine_script.main(["--alpha", "0.1"])
    assert from_url["metrics"] == pytest.approx(from_file["metrics"])
    dataset = dataset_inputs(client.get_run(from_url["run_id"]))["training"]
    assert dataset.source_type == "http" and server.url in dataset.source


# %%
# Bad flags and bad data: one sentence, the right exit code, no run


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--alpha", "-1", "at least 0"),
        ("--alpha", "nan", "at least 0"),
        ("--alpha", "inf", "at least 0"),
        ("--alpha", "abc", "must be a number"),
        ("--l1-ratio", "1.5", "between 0 and 1"),
        ("--l1-ratio", "-0.1", "between 0 and 1"),
        ("--test-size", "1", "between 0.05 and 0.95"),
        ("--test-size", "1e-300", "between 0.05 and 0.95"),
        ("--seed", "-1", "from 0 to 4294967295"),
    ],
)
def test_bad_flags_exit_2_before_any_run(tracking_store, client, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        wine_script.main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert all_runs(client) == []


def test_missing_file_from_the_command_line(tracking_store, client, tmp_path):
    """As a participant sees it: exit code 1, one line, no traceback, no run."""
    missing = tmp_path / "nowhere" / "winequality-red.csv"
    result = run_script("train_wine_elasticnet.py", "--data", str(missing))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"There is no file {missing}; pass the red-wine CSV with --data."
    ]
    assert all_runs(client) == []


def test_a_bad_file_is_refused_before_any_run(tracking_store, client, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("fixed acidity,alcohol,quality\n7.4,9.4,5\n")
    with pytest.raises(SystemExit) as exit_info:
        wine_script.main(["--data", str(path)])
    assert "is not the red-wine quality data" in str(exit_info.value.code)
    assert all_runs(client) == []


def readme_alpha_table():
    """The README's table of the alpha loop: {alpha: (rmse, r2, measurements used)}."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    header = "| alpha | rmse | r2 | measurements the model still uses |"
    table = readme.split(header)[1].strip().split("\n\n")[0]  # up to the first blank line
    rows = [line.strip("|").split("|") for line in table.splitlines()[1:]]
    return {
        alpha.strip(): (rmse.strip(), r2.strip(), used.strip()) for alpha, rmse, r2, used in rows
    }


def test_readme_alpha_table_is_what_the_runs_give(tracking_store):
    table = readme_alpha_table()
    assert list(table) == ["1", "0.5", "0.1", "0.01"]
    for alpha, (rmse, r2, used) in table.items():
        result = wine_script.main(["--alpha", alpha])
        model = mlflow.sklearn.load_model(result["model_uri"])
        nonzero = int((model[-1].coef_ != 0).sum())
        assert f"{result['metrics']['rmse']:.3f}" == rmse
        assert f"{result['metrics']['r2']:.3f}" == r2
        assert used == (f"{nonzero} of 11" if nonzero else "none: it predicts the average")
