"""demo.py: what one run records, checked in the tracking store."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from conftest import (
    REPO_ROOT,
    all_runs,
    run_script,
    small_filesystem,
    sqlite_uri,
    start_script,
    wait_for_row_count,
)

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
    shutil.copy(REPO_ROOT / "demo.py", workshop)
    shutil.copytree(REPO_ROOT / "plumbing", workshop / "plumbing")
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


@pytest.mark.parametrize(
    ("signals", "exit_code", "said"),
    [
        ([signal.SIGINT], -signal.SIGINT, "Ctrl+C"),
        ([signal.SIGTERM] * 2, -signal.SIGTERM, "SIGTERM"),
        pytest.param(
            [getattr(signal, "SIGHUP", 0)],  # the terminal window was closed
            -getattr(signal, "SIGHUP", 0),
            "SIGHUP",
            marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on Windows"),
        ),
    ],
    ids=["ctrl-c", "sigterm-twice", "terminal-closed"],
)
def test_interrupted_while_logging_the_model(
    tracking_store, client, tmp_path, signals, exit_code, said
):
    """Ctrl+C (or SIGTERM, twice) while the model is being logged: nothing RUNNING or PENDING."""
    process = start_script(str(REPO_ROOT / "demo.py"), "--n-estimators", "300", cwd=tmp_path)
    wait_for_row_count(tmp_path / "mlflow.db", "logged_models", 1, process)
    for signum in signals:
        process.send_signal(signum)
        time.sleep(0.1)
    stopped = time.monotonic()
    out, err = process.communicate(timeout=60)
    assert time.monotonic() - stopped < 30  # no waiting on a locked store
    # Killed by the signal, as a shell sees it: exit status 130 for Ctrl+C, 143 for SIGTERM.
    assert process.returncode == exit_code, err
    assert "Traceback" not in err
    [run] = all_runs(client)
    assert err.strip().splitlines()[-1] == (
        f"Stopped by {said}: run {run.info.run_id} is marked FAILED, with what it logged."
    )
    assert run.info.status == "FAILED"
    experiment_ids = [run.info.experiment_id]
    assert [model.status.name for model in client.search_logged_models(experiment_ids)] in (
        ["FAILED"],
        ["READY"],  # the signal came just as the model was complete
    )


def test_a_full_disk_is_one_sentence_and_leaves_nothing_running(tmp_path, empty_store_template):
    with small_filesystem(tmp_path / "disk", size="3m") as disk:
        shutil.copyfile(empty_store_template, disk / "mlflow.db")
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(
            b"\0" * (free - 200_000)
        )  # 200 kB left: no room for the model
        env = {"MLFLOW_TRACKING_URI": sqlite_uri(disk / "mlflow.db")}
        result = run_script(str(REPO_ROOT / "demo.py"), env=env, cwd=disk)
        assert result.returncode == 1
        # The last line is the sentence, not a traceback. (When SQLite itself finds the
        # disk full, MLflow logs that database error with its traceback before it.)
        if "ERROR mlflow.store.db.utils" not in result.stderr:
            assert "Traceback" not in result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("Stopped, the disk is full (")
        (disk / "filler").unlink()
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        [run] = all_runs(client)
        if "may still show RUNNING" in line:  # the full disk refused that update too
            assert f"run {run.info.run_id} may still show RUNNING" in line
            # With space again, the README's recipe marks the run and its model FAILED.
            readme = (REPO_ROOT / "README.md").read_text()
            recipe = re.search(r'`(python -c "[^`]*set_terminated[^`]*)`', readme)[1]
            command = recipe.replace("python", shlex.quote(sys.executable), 1)
            command = command.replace("<RUN_ID>", run.info.run_id)
            fixed = subprocess.run(["bash", "-c", command], cwd=disk, env={**os.environ, **env})
            assert fixed.returncode == 0
        else:
            assert line.endswith(
                f"run {run.info.run_id} is marked FAILED, with what it logged; free some space."
            )
        assert client.get_run(run.info.run_id).info.status == "FAILED"
        models = client.search_logged_models([run.info.experiment_id])
        assert [model.status.name for model in models] == ["FAILED"]
