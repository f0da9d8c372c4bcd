"""track_training_curves.py: step metrics and the other logging calls."""

import mlflow
import pytest
from conftest import all_runs, new_store, using_store

import track_training_curves

EPOCHS = 12
STEP_METRICS = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"]


def watch_log_batch(patch):
    """Record (run id, metric keys) of every ``MlflowClient.log_batch`` call from now on."""
    calls = []
    original_log_batch = mlflow.MlflowClient.log_batch

    def watched_log_batch(self, run_id, metrics=(), *args, **kwargs):
        calls.append((run_id, [metric.key for metric in metrics]))
        return original_log_batch(self, run_id, metrics, *args, **kwargs)

    patch.setattr(mlflow.MlflowClient, "log_batch", watched_log_batch)
    return calls


@pytest.fixture(scope="module")
def curves_store(tmp_path_factory, empty_store_template):
    """One training run shared by the tests that only read it, with log_batch watched."""
    folder, uri = new_store(tmp_path_factory, empty_store_template, "curves")
    with using_store(uri, folder) as patch:
        batches = watch_log_batch(patch)
        result = track_training_curves.main(["--epochs", str(EPOCHS)])
    return {"uri": uri, "folder": folder, "batches": batches, **result}


@pytest.fixture
def curves(curves_store):
    """Point this test at the shared run's store."""
    with using_store(curves_store["uri"], curves_store["folder"]):
        yield curves_store


@pytest.fixture
def curves_client(curves):
    return mlflow.MlflowClient(curves["uri"])


def test_every_epoch_is_one_step_of_each_metric(curves, curves_client):
    for key in STEP_METRICS:
        history = curves_client.get_metric_history(curves["run_id"], key)
        assert [point.step for point in history] == list(range(EPOCHS))
        values = [point.value for point in history]
        assert values == pytest.approx(curves["history"][key])
        timestamps = [point.timestamp for point in history]
        assert timestamps == sorted(timestamps)
    history = curves["history"]
    # Real learning: the loss falls and the accuracy rises over the epochs.
    assert history["train_loss"][-1] < history["train_loss"][0] / 2
    assert history["val_loss"][-1] < history["val_loss"][0] / 2
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]
    assert 0.85 <= history["val_accuracy"][-1] <= 1.0
    assert all(0 <= value <= 1 for value in history["train_accuracy"])


def step_batches(batches, run_id):
    """The sizes of the log_batch calls that carried step metrics to ``run_id``.

    MLflow's own log_params/log_metrics also go through log_batch: skip those.
    """
    return [
        len(keys)
        for batch_run_id, keys in batches
        if batch_run_id == run_id and set(keys) & set(STEP_METRICS)
    ]


def test_step_metrics_go_out_every_ten_epochs(curves):
    """Four metrics a step: one call for epochs 0-9 and one for the last two."""
    assert step_batches(curves["batches"], curves["run_id"]) == [40, 8]


def test_params_and_summary_metrics(curves, curves_client):
    run = curves_client.get_run(curves["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "mlp_digits_curves"
    assert curves_client.get_experiment(run.info.experiment_id).name == "digits-training-curves"
    assert run.data.tags["model_type"] == "MLPClassifier"
    assert run.data.params == {
        "hidden_units": "32",
        "learning_rate": "0.001",
        "batch_size": "64",
        "epochs": str(EPOCHS),
        "seed": "0",
    }
    metrics = run.data.metrics
    assert set(metrics) == {
        *STEP_METRICS,
        "best_epoch",
        "best_val_loss",
        "best_val_accuracy",
    }
    best_epoch = int(metrics["best_epoch"])
    assert 0 <= best_epoch < EPOCHS
    assert metrics["best_val_loss"] == pytest.approx(min(curves["history"]["val_loss"]))
    assert metrics["best_val_accuracy"] == pytest.approx(
        curves["history"]["val_accuracy"][best_epoch]
    )
    # The latest value of a step metric is the last epoch's.
    assert metrics["val_loss"] == pytest.approx(curves["history"]["val_loss"][-1])
    # log_metrics without a step adds one point per summary metric, at step 0.
    assert len(curves_client.get_metric_history(curves["run_id"], "best_epoch")) == 1


def test_config_json_summary_text_and_figure(curves, curves_client):
    run_id = curves["run_id"]
    assert {f.path for f in curves_client.list_artifacts(run_id)} == {
        "config.json",
        "summary.txt",
        "plots",
    }
    config = mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json")
    assert config == {
        "model": "MLPClassifier",
        "solver": "adam",
        "hidden_units": 32,
        "learning_rate": 0.001,
        "batch_size": 64,
        "epochs": EPOCHS,
        "seed": 0,
    }
    summary = mlflow.artifacts.load_text(f"runs:/{run_id}/summary.txt")
    assert summary.startswith("Lowest validation loss ")
    best_epoch = int(curves["summary"]["best_epoch"])
    assert f"at epoch {best_epoch}" in summary
    [figure] = curves_client.list_artifacts(run_id, "plots")
    assert figure.path == "plots/learning_curve.png"
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=figure.path)
    with open(local, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_same_curves(curves_store, tracking_store):
    again = track_training_curves.main(["--epochs", str(EPOCHS)])
    for key in STEP_METRICS:
        assert again["history"][key] == curves_store["history"][key]


def test_prints_run_id_and_where_to_look(tracking_store, capsys):
    result = track_training_curves.main(["--epochs", "1"])
    out = capsys.readouterr().out
    assert result["run_id"] in out
    assert "python autolog_grid_search.py" in out
    lowest = f"lowest val_loss (epoch {result['summary']['best_epoch']})"
    assert f"  {lowest}  {result['summary']['best_val_loss']:.3f}\n" in out
    assert f"  {'final val_loss':<{len(lowest)}}  {result['history']['val_loss'][-1]:.3f}\n" in out
    assert f"/#/experiments/{mlflow.get_run(result['run_id']).info.experiment_id}/runs/" in out


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--epochs", "0", "at least 1"),
        ("--epochs", "-3", "at least 1"),
        ("--epochs", "ten", "must be a number"),
        ("--seed", "-1", "from 0 to 4294967295"),
        ("--learning-rate", "0", "above 0"),
        ("--learning-rate", "-0.1", "above 0"),
        ("--learning-rate", "nan", "above 0"),
        ("--learning-rate", "1e300", "at most 1"),
    ],
)
def test_bad_flags_exit_2_before_any_run(tracking_store, client, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        track_training_curves.main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert "Traceback" not in err
    assert all_runs(client) == []
