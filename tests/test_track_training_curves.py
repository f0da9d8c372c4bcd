"""track_training_curves.py: step metrics sent in batches, the other logging calls, the model."""

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

EPOCHS = 12
STEP_METRICS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]


@pytest.fixture(scope="module")
def curves(tmp_path_factory, empty_store_template):
    """One training run in a store of its own, every ``MlflowClient.log_batch`` call watched."""
    folder = tmp_path_factory.mktemp("curves")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    uri = sqlite_uri(folder / "mlflow.db")
    batches = []
    log_batch = mlflow.MlflowClient.log_batch

    def watched_log_batch(self, run_id, metrics=(), *args, **kwargs):
        batches.append([(metric.key, metric.step) for metric in metrics])
        return log_batch(self, run_id, metrics, *args, **kwargs)

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        patch.setattr(mlflow.MlflowClient, "log_batch", watched_log_batch)
        lesson = load_lesson("track_training_curves.py")
        result = lesson.main(["--epochs", str(EPOCHS)])
    return {
        "uri": uri,
        "lesson": lesson,
        "batches": batches,
        "printed": printed.getvalue(),
        **result,
    }


@pytest.fixture
def curves_client(curves, monkeypatch):
    """A client of the run's store, which is also the store of MLflow's own functions."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", curves["uri"])
    mlflow.set_tracking_uri(curves["uri"])
    return mlflow.MlflowClient(curves["uri"])


def test_every_epoch_is_one_step_of_each_metric(curves, curves_client):
    for key in STEP_METRICS:
        points = curves_client.get_metric_history(curves["run_id"], key)
        assert [point.step for point in points] == list(range(EPOCHS))
        assert [point.value for point in points] == pytest.approx(curves["history"][key])
    history = curves["history"]
    # Real learning: the loss falls and the accuracy rises over the epochs.
    assert history["train_loss"][-1] < history["train_loss"][0] / 2
    assert history["val_loss"][-1] < history["val_loss"][0] / 2
    assert history["val_accuracy"][-1] > history["val_accuracy"][0]
    assert 0.85 <= history["val_accuracy"][-1] <= 1.0
    assert all(0 <= value <= 1 for value in history["train_accuracy"])


def test_the_points_go_out_ten_epochs_at_a_time(curves):
    """Four points an epoch: one log_batch call for epochs 0-9, one for the last two.

    MLflow's own log_params and log_metrics go through log_batch too, and log_model
    copies the run's latest metrics to the model with it: those mix in other keys."""
    batches = [{key for key, _ in batch} for batch in curves["batches"]]
    step_batches = [
        batch
        for batch, keys in zip(curves["batches"], batches, strict=True)
        if keys and keys <= set(STEP_METRICS)
    ]
    assert [len(batch) for batch in step_batches] == [40, 8]
    assert sorted({step for _, step in step_batches[0]}) == list(range(10))
    assert sorted({step for _, step in step_batches[1]}) == [10, 11]


def test_params_tags_and_summary_metrics(curves, curves_client):
    run = curves_client.get_run(curves["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "mlp_digits_curves"
    assert curves_client.get_experiment(run.info.experiment_id).name == "digits-training-curves"
    assert run.data.tags["model_type"] == "MLPClassifier"
    assert run.data.tags["dataset"] == "sklearn digits"
    assert run.data.params == {
        "hidden_units": "32",
        "learning_rate": "0.001",
        "batch_size": "64",
        "epochs": str(EPOCHS),
        "seed": "0",
    }
    metrics = run.data.metrics
    assert set(metrics) == {*STEP_METRICS, "best_epoch", "best_val_loss", "best_val_accuracy"}
    best_epoch = int(metrics["best_epoch"])
    assert best_epoch == curves["summary"]["best_epoch"]
    assert metrics["best_val_loss"] == pytest.approx(min(curves["history"]["val_loss"]))
    assert metrics["best_val_accuracy"] == pytest.approx(
        curves["history"]["val_accuracy"][best_epoch]
    )
    # A step metric's latest value is the last epoch's.
    assert metrics["val_loss"] == pytest.approx(curves["history"]["val_loss"][-1])
    # log_metrics without a step adds one point per summary metric.
    assert len(curves_client.get_metric_history(curves["run_id"], "best_epoch")) == 1


def test_config_json_summary_text_and_figure(curves, curves_client):
    run_id = curves["run_id"]
    assert {f.path for f in curves_client.list_artifacts(run_id)} == {
        "config.json",
        "summary.txt",
        "plots",
    }
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {
        "model": "MLPClassifier",
        "solver": "adam",
        "hidden_units": 32,
        "learning_rate": 0.001,
        "batch_size": 64,
        "epochs": EPOCHS,
        "seed": 0,
    }
    best_epoch = curves["summary"]["best_epoch"]
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/summary.txt") == (
        f"Lowest validation loss {curves['summary']['best_val_loss']:.3f} at epoch {best_epoch}.\n"
    )
    [figure] = curves_client.list_artifacts(run_id, "plots")
    assert figure.path == "plots/learning_curve.png"
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=figure.path)
    with open(local, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_model_reads_raw_pixels(curves, curves_client):
    """The scaler and the network, logged together: predictions from the data as it comes."""
    info = mlflow.models.get_model_info(curves["model_uri"])
    assert info.run_id == curves["run_id"]
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert len(info.signature.inputs.input_names()) == 64
    _, X_val, _, y_val = curves["lesson"].load_data(0)
    predictions = mlflow.pyfunc.load_model(curves["model_uri"]).predict(X_val)
    accuracy = (predictions == y_val.to_numpy()).mean()
    assert accuracy == pytest.approx(curves["history"]["val_accuracy"][-1])


def test_prints_the_curve_the_run_and_where_to_look(curves, curves_client):
    run = curves_client.get_run(curves["run_id"])
    history = curves["history"]
    summary = curves["summary"]
    lowest = f"lowest val_loss (epoch {summary['best_epoch']})"
    assert curves["printed"].splitlines() == [
        f"Training for {EPOCHS} epochs",
        f"  epoch   9  val_loss {history['val_loss'][9]:.3f}"
        f"  val_accuracy {history['val_accuracy'][9]:.3f}",
        f"  epoch  11  val_loss {history['val_loss'][11]:.3f}"
        f"  val_accuracy {history['val_accuracy'][11]:.3f}",
        f"Run {run.info.run_id} (mlp_digits_curves) in experiment 'digits-training-curves'",
        *[f"  {'final ' + key:<{len(lowest)}}  {history[key][-1]:.3f}" for key in STEP_METRICS],
        f"  {lowest}  {summary['best_val_loss']:.3f}",
        f"Model URI: {curves['model_uri']}",
        "Next:      python autolog_grid_search.py, where MLflow logs by itself",
        f"See it:    http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/"
        f"{run.info.run_id}?workflowType=machine_learning",
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--epochs", "-3"], "--epochs must be at least 1"),
        (["--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["--learning-rate", "0"], "--learning-rate must be above 0 and at most 1"),
        (["--learning-rate", "nan"], "--learning-rate must be above 0 and at most 1"),
        (["--learning-rate", "1e300"], "--learning-rate must be above 0 and at most 1"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
    ],
)
def test_a_bad_flag_exits_2_before_any_run(tracking_store, client, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        load_lesson("track_training_curves.py").main(argv)
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(f": error: {message}")
    assert all_runs(client) == []


def test_copied_alone_a_bad_flag_is_one_line_and_no_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    script = copy_lesson("track_training_curves.py", tmp_path / "alone")
    result = run_script(script.name, "--learning-rate", "2", cwd=script.parent)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "track_training_curves.py: error: --learning-rate must be above 0 and at most 1"
    )
    assert result.stderr.startswith("usage: track_training_curves.py [-h]")  # then the error
    assert sorted(path.name for path in script.parent.iterdir()) == ["track_training_curves.py"]


@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "Ctrl+C"), (signal.SIGTERM, "SIGTERM")]
)
def test_an_interrupt_mid_training(tmp_path, monkeypatch, empty_store_template, signum, said):
    """Stopped once the first ten epochs' points are in: one line, 130 or 143, the run FAILED
    with the points it sent, and no model."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    script = copy_lesson("track_training_curves.py", tmp_path / "alone")
    db = script.parent / "mlflow.db"
    shutil.copyfile(empty_store_template, db)  # the tables made already: seconds saved
    process = start_script(script.name, "--epochs", "500", cwd=script.parent)
    returncode, stderr = interrupt_when(db, "metrics", 1, process, signum)
    assert returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [f"Stopped by {said}: a run under way is marked FAILED."]

    client = mlflow.MlflowClient(sqlite_uri(db))
    [run] = all_runs(client)
    assert run.info.status == "FAILED"
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "val_loss")]
    assert steps[:10] == list(range(10))
    assert steps == list(range(len(steps)))  # whole batches of ten epochs, in order
    assert len(steps) % 10 == 0 and len(steps) < 500
    assert client.search_logged_models([run.info.experiment_id]) == []
