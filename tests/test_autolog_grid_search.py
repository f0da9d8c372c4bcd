"""autolog_grid_search.py: what mlflow.sklearn.autolog() records for a grid search."""

import mlflow
import pytest
from conftest import all_runs

import autolog_grid_search


@pytest.fixture
def autologged(tracking_store, client):
    result = autolog_grid_search.main([])
    return result, client.get_run(result["run_id"])


def test_autolog_records_the_grid_search(autologged, client):
    result, run = autologged
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "ridge_grid_search_autolog"
    assert client.get_experiment(run.info.experiment_id).name == "digits-training-curves"
    params = run.data.params
    assert params["cv"] == "3"
    assert float(params["best_ridgeclassifier__alpha"]) == result["best_alpha"]
    assert result["best_alpha"] in autolog_grid_search.RIDGE_ALPHAS
    metrics = run.data.metrics
    assert 0.85 <= metrics["best_cv_score"] <= 1.0
    assert 0.85 <= metrics["training_accuracy_score"] <= 1.0
    # score() called inside the run becomes a post-training metric.
    assert metrics["GridSearchCV_score_X_val"] == pytest.approx(result["val_accuracy"])
    assert 0.85 <= result["val_accuracy"] <= 1.0
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"cv_results.csv", "estimator.html", "training_confusion_matrix.png"} <= artifacts
    assert run.inputs.dataset_inputs  # the training data, recorded by autolog


def test_one_child_run_per_candidate_and_no_model(autologged, client):
    _, run = autologged
    children = [
        r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == run.info.run_id
    ]
    alphas = sorted(float(child.data.params["ridgeclassifier__alpha"]) for child in children)
    assert alphas == autolog_grid_search.RIDGE_ALPHAS
    for child in children:
        assert 0.85 <= child.data.metrics["mean_test_score"] <= 1.0
        assert "std_test_score" in child.data.metrics
    # log_models=False: no model at all; the search and its candidates, nothing else.
    assert client.search_logged_models([run.info.experiment_id]) == []
    assert len(all_runs(client)) == 1 + len(autolog_grid_search.RIDGE_ALPHAS)


def test_autolog_is_off_after_main(autologged, client):
    """A later fit in the same process must not start logging runs of its own."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import RidgeClassifier

    runs_before = len(all_runs(client))
    RidgeClassifier().fit(*load_iris(return_X_y=True))
    assert len(all_runs(client)) == runs_before
    assert mlflow.active_run() is None


def test_prints_the_best_alpha_and_where_to_look(tracking_store, capsys):
    result = autolog_grid_search.main(["--seed", "3"])
    out = capsys.readouterr().out
    assert f"Run {result['run_id']} (ridge_grid_search_autolog)" in out
    assert f"Best alpha: {result['best_alpha']}" in out
    assert f"validation accuracy          {result['val_accuracy']:.3f}" in out
    assert f"/runs/{result['run_id']}" in out


def test_bad_seed_exits_2_before_any_run(tracking_store, client, capsys):
    with pytest.raises(SystemExit) as exit_info:
        autolog_grid_search.main(["--seed", "-1"])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err
    assert all_runs(client) == []
