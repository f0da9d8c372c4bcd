"""autolog_grid_search.py: what mlflow.sklearn.autolog() records for a grid search."""

import contextlib
import io
import shutil
import signal

import mlflow
import pytest
from conftest import (
    all_runs,
    copy_lesson,
    interrupt_when,
    load_lesson,
    run_script,
    sqlite_uri,
    start_script,
)

ALPHAS = [0.1, 1.0, 10.0, 100.0]


@pytest.fixture(scope="module")
def autologged(tmp_path_factory, empty_store_template):
    """One autologged grid search in a store of its own, shared by the tests that read it."""
    folder = tmp_path_factory.mktemp("autolog")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    uri = sqlite_uri(folder / "mlflow.db")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        result = load_lesson("autolog_grid_search.py").main([])
    return {"uri": uri, "printed": printed.getvalue(), **result}


@pytest.fixture
def autolog_client(autologged, monkeypatch):
    """A client of the search's store, which is also the store of MLflow's own functions."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", autologged["uri"])
    mlflow.set_tracking_uri(autologged["uri"])
    return mlflow.MlflowClient(autologged["uri"])


def test_autolog_records_the_grid_search(autologged, autolog_client):
    run = autolog_client.get_run(autologged["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "ridge_grid_search_autolog"
    assert autolog_client.get_experiment(run.info.experiment_id).name == "digits-training-curves"
    params = run.data.params
    assert params["cv"] == "3"
    assert float(params["best_ridgeclassifier__alpha"]) == autologged["best_alpha"] == 10.0
    metrics = run.data.metrics
    assert 0.85 <= metrics["best_cv_score"] <= 1.0
    assert 0.85 <= metrics["training_accuracy_score"] <= 1.0
    # score() called inside the run becomes a metric of its own.
    assert metrics["GridSearchCV_score_X_val"] == pytest.approx(autologged["val_accuracy"])
    assert 0.85 <= autologged["val_accuracy"] <= 1.0
    artifacts = {f.path for f in autolog_client.list_artifacts(run.info.run_id)}
    assert {"cv_results.csv", "estimator.html", "training_confusion_matrix.png"} <= artifacts
    # The training data, recorded by autolog as the run's input.
    [training] = run.inputs.dataset_inputs
    assert {tag.key: tag.value for tag in training.tags}["mlflow.data.context"] == "train"


def test_one_child_run_per_candidate_and_no_model(autologged, autolog_client):
    run = autolog_client.get_run(autologged["run_id"])
    runs = all_runs(autolog_client)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]
    assert (
        sorted(float(child.data.params["ridgeclassifier__alpha"]) for child in children) == ALPHAS
    )
    for child in children:
        assert child.info.status == "FINISHED"
        assert 0.85 <= child.data.metrics["mean_test_score"] <= 1.0
        assert "std_test_score" in child.data.metrics
    # log_models=False: no model at all; the search and its candidates, nothing else.
    assert autolog_client.search_logged_models([run.info.experiment_id]) == []
    assert len(runs) == 1 + len(ALPHAS)


def test_autolog_is_off_after_main(autologged, autolog_client):
    """A later fit in the same process starts no run of its own."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import RidgeClassifier

    runs_before = len(all_runs(autolog_client))
    RidgeClassifier().fit(*load_iris(return_X_y=True))
    assert len(all_runs(autolog_client)) == runs_before
    assert mlflow.active_run() is None


def test_prints_the_scores_the_best_alpha_and_where_to_look(autologged, autolog_client):
    run = autolog_client.get_run(autologged["run_id"])
    best_cv_score = run.data.metrics["best_cv_score"]
    assert autologged["printed"].splitlines() == [
        f"Run {run.info.run_id} (ridge_grid_search_autolog) in experiment 'digits-training-curves'",
        f"  best cross-validation score  {best_cv_score:.3f}",
        f"  validation accuracy          {autologged['val_accuracy']:.3f}",
        "Best alpha: 10.0 (of 0.1, 1.0, 10.0, 100.0)",
        f"See it:    http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/"
        f"{run.info.run_id}?workflowType=machine_learning",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "--seed must be a whole number from 0 to 4294967295"),
        ("4294967296", "--seed must be a whole number from 0 to 4294967295"),
        ("seven", "argument --seed: invalid int value: 'seven'"),
    ],
)
def test_a_bad_seed_exits_2_before_any_run(tracking_store, client, capsys, value, message):
    with pytest.raises(SystemExit) as stop:
        load_lesson("autolog_grid_search.py").main(["--seed", value])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {message}")
    assert all_runs(client) == []


def test_copied_alone_a_bad_flag_is_one_line_and_no_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    script = copy_lesson("autolog_grid_search.py", tmp_path / "alone")
    result = run_script(script.name, "--seed", "-1", cwd=script.parent)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "usage: autolog_grid_search.py [-h] [--seed SEED]",
        "autolog_grid_search.py: error: --seed must be a whole number from 0 to 4294967295",
    ]
    assert sorted(path.name for path in script.parent.iterdir()) == ["autolog_grid_search.py"]


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "Ctrl+C"), (signal.SIGTERM, "SIGTERM")]
)
def test_an_interrupt_during_the_search(tmp_path, monkeypatch, empty_store_template, signum, said):
    """Stopped once autolog has logged the search's settings (it does so as fit begins):
    one line, 130 or 143, and no run left RUNNING."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    script = copy_lesson("autolog_grid_search.py", tmp_path / "alone")
    db = script.parent / "mlflow.db"
    shutil.copyfile(empty_store_template, db)  # the tables made already: seconds saved
    process = start_script(script.name, cwd=script.parent)
    returncode, stderr = interrupt_when(db, "params", 1, process, signum)
    assert returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == f"Stopped by {said}: a run under way is marked FAILED."

    client = mlflow.MlflowClient(sqlite_uri(db))
    runs = all_runs(client)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.status for run in parents] == ["FAILED"]
    assert "RUNNING" not in {run.info.status for run in runs}
