"""demo.py: what one run records, checked in the tracking store."""

import json
from pathlib import Path

import mlflow
import pytest
from conftest import REPO_ROOT, all_runs, run_script, sqlite_uri

import demo


@pytest.fixture
def demo_result(tracking_store):
    return demo.main(["--n-estimators", "30", "--max-depth", "4", "--owner", "alice"])


def test_run_records_params_metrics_and_tags(demo_result, client):
    run = client.get_run(demo_result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "random_forest_breast_cancer"
    assert client.get_experiment(run.info.experiment_id).name == "demo-mlflow-artifacts"
    assert run.data.params == {
        "n_estimators": "30",
        "max_depth": "4",
        "test_size": "0.25",
        "seed": "42",
    }
    metrics = run.data.metrics
    assert set(metrics) == {"accuracy", "roc_auc", "precision", "recall", "f1_score"}
    # A forest on this data scores well above chance; far lower means a broken pipeline.
    assert 0.9 <= metrics["accuracy"] <= 1.0
    assert 0.95 <= metrics["roc_auc"] <= 1.0
    for name in ("precision", "recall", "f1_score"):
        assert 0.85 <= metrics[name] <= 1.0
    assert metrics == pytest.approx(demo_result["metrics"])
    assert run.data.tags["model_type"] == "RandomForestClassifier"
    assert run.data.tags["dataset"] == "sklearn breast_cancer"
    assert run.data.tags["owner"] == "alice"


def test_run_stores_plots_and_report(demo_result, client):
    run_id = demo_result["run_id"]
    files = {f.path for f in client.list_artifacts(run_id)}
    assert files == {"plots", "classification_report.txt", "held_out_rows.json"}
    plots = {f.path for f in client.list_artifacts(run_id, "plots")}
    assert plots == {
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/feature_importance.png",
    }
    local = mlflow.artifacts.download_artifacts(run_id=run_id)
    for plot in plots:
        with open(f"{local}/{plot}", "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    report = mlflow.artifacts.load_text(f"runs:/{run_id}/classification_report.txt")
    assert "malignant" in report and "benign" in report and "accuracy" in report


def test_training_and_held_out_rows_are_recorded(demo_result, client):
    run = client.get_run(demo_result["run_id"])
    inputs = {
        {tag.key: tag.value for tag in item.tags}["mlflow.data.context"]: item.dataset
        for item in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "evaluation"}
    assert inputs["training"].name == "breast_cancer_training"
    assert inputs["evaluation"].name == "breast_cancer_evaluation"
    for dataset in inputs.values():
        assert dataset.digest and "archive.ics.uci.edu" in dataset.source
    assert json.loads(inputs["training"].profile)["num_rows"] == 426
    # The held-out rows themselves, as load_model.py reads them back.
    held_out = mlflow.load_table("held_out_rows.json", run_ids=[run.info.run_id])
    assert len(held_out) == 143 == json.loads(inputs["evaluation"].profile)["num_rows"]
    assert set(held_out["diagnosis"]) == {"malignant", "benign"}
    features = held_out.drop(columns="diagnosis")
    model = mlflow.sklearn.load_model(demo_result["model_uri"])
    accuracy = (model.predict(features) == held_out["diagnosis"]).mean()
    assert accuracy == pytest.approx(demo_result["metrics"]["accuracy"])


def test_model_is_skops_with_signature_and_loads(demo_result, client):
    model_uri = demo_result["model_uri"]
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature is not None
    assert len(info.signature.inputs.input_names()) == 30
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.run_id == demo_result["run_id"]
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    assert "mlflow==3.17.2" in requirements
    assert any(r.startswith("skops==") for r in requirements)
    assert any(r.startswith("scikit-learn==") for r in requirements)

    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data.head(20)
    predictions = mlflow.pyfunc.load_model(model_uri).predict(features)
    assert set(predictions) <= {"malignant", "benign"}
    assert len(predictions) == 20


def test_same_seed_gives_same_metrics(tracking_store):
    first = demo.main(["--n-estimators", "20", "--seed", "7"])
    second = demo.main(["--n-estimators", "20", "--seed", "7"])
    assert first["metrics"] == second["metrics"]
    assert first["run_id"] != second["run_id"]


def test_prints_run_id_metrics_and_where_to_look(tracking_store, capsys):
    result = demo.main(["--n-estimators", "10"])
    out = capsys.readouterr().out
    assert result["run_id"] in out
    assert f"accuracy   {result['metrics']['accuracy']:.3f}" in out
    assert result["model_uri"] in out
    assert f"/#/experiments/{mlflow.get_run(result['run_id']).info.experiment_id}/runs/" in out


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--n-estimators", "0", "at least 1"),
        ("--n-estimators", "-5", "at least 1"),
        ("--max-depth", "0", "at least 1"),
        ("--test-size", "0", "between 0.05 and 0.95"),
        ("--test-size", "0.999", "between 0.05 and 0.95"),
        ("--test-size", "abc", "must be a number"),
        ("--seed", "-1", "from 0 to 4294967295"),
        ("--seed", "99999999999", "from 0 to 4294967295"),
        ("--max-depth", "1e400", "must be a number"),
    ],
)
def test_bad_flags_exit_2_before_any_run(tracking_store, client, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        demo.main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert "Traceback" not in err
    assert all_runs(client) == []


def test_local_store_is_at_repo_root_from_any_folder(tmp_path):
    """The "empty UI" trap: started from a subfolder, the run still lands at the root."""
    workshop = tmp_path / "workshop"
    subfolder = workshop / "notebooks"
    subfolder.mkdir(parents=True)
    for script in ("demo.py", "plumbing.py"):
        (workshop / script).write_text((REPO_ROOT / script).read_text())
    result = run_script(
        "../demo.py", "--n-estimators", "5", cwd=subfolder, env={"MLFLOW_TRACKING_URI": ""}
    )
    assert result.returncode == 0, result.stderr
    assert not (subfolder / "mlflow.db").exists()
    assert not (subfolder / "mlruns").exists()
    client = mlflow.MlflowClient(sqlite_uri(workshop / "mlflow.db"))
    [run] = all_runs(client)
    assert run.info.status == "FINISHED"
    artifact_dir = workshop / "mlruns" / "demo-mlflow-artifacts" / run.info.run_id / "artifacts"
    assert (artifact_dir / "plots" / "roc_curve.png").is_file()
    models_dir = workshop / "mlruns" / "demo-mlflow-artifacts" / "models"
    assert len(list(models_dir.glob("m-*/artifacts/model.skops"))) == 1
