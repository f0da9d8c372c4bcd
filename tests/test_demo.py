"""demo.py: what one run records, checked in the tracking store, and how it stops."""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from conftest import (
    all_runs,
    copy_lesson,
    interrupt_when,
    load_lesson,
    participant_env,
    require,
    run_script,
    sqlite_uri,
    start_script,
)
from mlflow.entities import LoggedModelStatus, ViewType
from mlflow.exceptions import MlflowException


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One demo.py run, as `python demo.py --n-estimators 30 --max-depth 4 --owner alice`,
    in a store of its own that the tests below read."""
    folder = tmp_path_factory.mktemp("demo")
    uri = sqlite_uri(folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        result = load_lesson("demo.py").main(
            ["--n-estimators", "30", "--max-depth", "4", "--owner", "alice"]
        )
        mlflow.set_tracking_uri(uri)
        yield result, mlflow.MlflowClient(uri)


def test_run_records_params_metrics_and_tags(demo_run):
    result, client = demo_run
    run = client.get_run(result["run_id"])
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
    assert metrics == pytest.approx(result["metrics"])
    tags = run.data.tags
    assert tags["model_type"] == "RandomForestClassifier"
    assert tags["dataset"] == "sklearn breast_cancer"
    assert tags["owner"] == "alice"


def test_run_stores_plots_and_report(demo_run):
    result, client = demo_run
    run_id = result["run_id"]
    files = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert files == {"plots", "classification_report.txt", "held_out_rows.json"}
    plots = {artifact.path for artifact in client.list_artifacts(run_id, "plots")}
    assert plots == {
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/feature_importance.png",
    }
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id))
    for plot in plots:
        assert (local / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = mlflow.artifacts.load_text(f"runs:/{run_id}/classification_report.txt")
    assert "malignant" in report and "benign" in report and "accuracy" in report


def test_training_and_held_out_rows_are_recorded(demo_run):
    result, client = demo_run
    run = client.get_run(result["run_id"])
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
    held_out = client.load_table(run.info.experiment_id, "held_out_rows.json", [run.info.run_id])
    assert len(held_out) == 143 == json.loads(inputs["evaluation"].profile)["num_rows"]
    assert set(held_out["diagnosis"]) == {"malignant", "benign"}
    model = mlflow.sklearn.load_model(result["model_uri"])
    accuracy = (model.predict(held_out.drop(columns="diagnosis")) == held_out["diagnosis"]).mean()
    assert accuracy == pytest.approx(result["metrics"]["accuracy"])


def test_model_is_skops_with_signature_requirements_and_loads(demo_run):
    result, _ = demo_run
    model_uri = result["model_uri"]
    info = mlflow.models.get_model_info(model_uri)
    assert len(info.signature.inputs.input_names()) == 30
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert info.run_id == result["run_id"]
    requirements = Path(mlflow.pyfunc.get_model_dependencies(model_uri)).read_text().split()
    assert "mlflow==3.17.2" in requirements
    assert "scikit-learn==1.9.1" in requirements
    assert "skops==0.16.0" in requirements

    from sklearn.datasets import load_breast_cancer

    features = load_breast_cancer(as_frame=True).data.head(20)
    predictions = mlflow.pyfunc.load_model(model_uri).predict(features)
    assert len(predictions) == 20
    assert set(predictions) <= {"malignant", "benign"}


def test_same_seed_gives_same_metrics_and_prints_where_to_look(tracking_store, capsys):
    demo = load_lesson("demo.py")
    first = demo.main(["--n-estimators", "10", "--seed", "7"])
    second = demo.main(["--n-estimators", "10", "--seed", "7"])
    assert first["metrics"] == second["metrics"]
    assert first["run_id"] != second["run_id"]
    out = capsys.readouterr().out
    experiment_id = mlflow.get_run(second["run_id"]).info.experiment_id
    assert f"  accuracy   {second['metrics']['accuracy']:.3f}\n" in out
    assert f"Load it:   python load_model.py --model-uri {second['model_uri']}\n" in out
    assert (
        f"See it:    http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/"
        f"{second['run_id']}?workflowType=machine_learning\n"
    ) in out


def test_an_experiment_deleted_in_the_ui_is_mlflows_sentence_until_restored(tracking_store):
    """README, "When things go wrong": MLflow logs nothing to a deleted experiment, and says
    so; restored (``mlflow experiments restore``), it takes runs again."""
    client = mlflow.MlflowClient(tracking_store)
    experiment_id = client.create_experiment("demo-mlflow-artifacts")
    client.delete_experiment(experiment_id)
    demo = load_lesson("demo.py")
    with pytest.raises(MlflowException) as error:
        demo.main(["--n-estimators", "3"])
    assert error.value.message.startswith(
        "Cannot set a deleted experiment 'demo-mlflow-artifacts' as the active experiment."
    )
    assert client.search_runs([experiment_id], run_view_type=ViewType.ALL) == []
    client.restore_experiment(experiment_id)
    result = demo.main(["--n-estimators", "3"])
    assert client.get_run(result["run_id"]).info.experiment_id == experiment_id


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n-estimators", "0"], "--n-estimators and --max-depth must be at least 1"),
        (["--max-depth", "-3"], "--n-estimators and --max-depth must be at least 1"),
        (["--test-size", "1.5"], "--test-size must be between 0.05 and 0.95"),
        (["--test-size", "abc"], "argument --test-size: invalid float value: 'abc'"),
        (["--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
        (["--trees", "5"], "unrecognized arguments: --trees 5"),
    ],
)
def test_a_bad_flag_is_one_line_exit_2_and_nothing_logged(tracking_store, capsys, flags, message):
    with pytest.raises(SystemExit) as stopped:
        load_lesson("demo.py").main(flags)
    assert stopped.value.code == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert error_lines[-1].endswith(f": error: {message}")  # "demo.py: error: ..." when run
    assert all_runs(mlflow.MlflowClient(tracking_store)) == []


def test_copied_alone_it_runs_with_its_store_beside_it(tmp_path):
    """demo.py alone in an empty folder, started from another folder: the store is beside it."""
    lesson = copy_lesson("demo.py", tmp_path / "copy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_script(str(lesson), "--n-estimators", "10", cwd=elsewhere, env=no_tracking_uri())
    assert result.returncode == 0, result.stderr
    assert "Run " in result.stdout and "See it:" in result.stdout
    client = mlflow.MlflowClient(sqlite_uri(tmp_path / "copy" / "mlflow.db"))
    [run] = all_runs(client)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "copy" / "mlruns").as_uri())
    assert list(elsewhere.iterdir()) == []


def test_a_tracking_uri_from_an_mlflow_2_tutorial_is_one_sentence(tmp_path):
    """MLFLOW_TRACKING_URI=./mlruns, the folder store of MLflow 2 tutorials: MLflow 3 refuses
    it, and the lesson says so in one sentence, exit 1, with nothing written (README, "When
    things go wrong")."""
    lesson = copy_lesson("demo.py", tmp_path)
    result = run_script(str(lesson), cwd=tmp_path, env={"MLFLOW_TRACKING_URI": "./mlruns"})
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("MLflow: The filesystem tracking backend (e.g., './mlruns')"), line
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo.py"]


def nameless_uid():
    """A user id with no user name on this machine, as in a container started with
    ``--user 1000``."""
    import pwd

    uid = 12345
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def run_as_nameless_user(*args, cwd, env):
    """``python *args`` in a user namespace (``unshare``), as a user id that has no name,
    with none of the variables that name the user either, but those ``env`` sets."""
    names = ("LOGNAME", "USER", "LNAME", "USERNAME")  # what getpass.getuser() reads first
    environment = {k: v for k, v in participant_env().items() if k not in names}
    unshare = ["unshare", "--user", f"--map-user={nameless_uid()}"]
    require(
        shutil.which("unshare")
        and subprocess.run([*unshare, "true"], capture_output=True).returncode == 0,
        "running as a user id with no name needs Linux's unshare and user namespaces",
    )
    return subprocess.run(
        [*unshare, sys.executable, *args],
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_user_id_with_no_name_is_fixed_by_setting_user(tmp_path):
    """A user id with no user name (a container started with ``--user``): demo.py's
    ``--owner`` default fails as README, "When things go wrong", shows; with USER set, MLflow
    and the lesson both record it."""
    lesson = copy_lesson("demo.py", tmp_path)
    result = run_as_nameless_user(str(lesson), cwd=tmp_path, env=no_tracking_uri())
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("KeyError: 'getpwuid(): uid not found: ")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo.py"]

    env = {**no_tracking_uri(), "USER": "ana"}
    result = run_as_nameless_user(str(lesson), "--n-estimators", "10", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    [run] = all_runs(mlflow.MlflowClient(sqlite_uri(tmp_path / "mlflow.db")))
    assert run.data.tags["mlflow.user"] == run.data.tags["owner"] == "ana"


def no_tracking_uri():
    """The environment of a participant who set no MLFLOW_TRACKING_URI."""
    return {"MLFLOW_TRACKING_URI": ""}


@pytest.mark.parametrize(
    ("signum", "exit_code", "line"),
    [
        (signal.SIGINT, 130, "Stopped by Ctrl+C: a run under way is marked FAILED."),
        (signal.SIGTERM, 143, "Stopped by SIGTERM: a run under way is marked FAILED."),
    ],
)
def test_interrupted_while_the_forest_trains(tmp_path, signum, exit_code, line):
    """Stopped while 2,000 trees train (seconds): one line, the signal's exit code, the run
    FAILED. The signal goes once the held-out table is logged, whose tag is the last thing
    written before training: an interrupt in the middle of a SQLite statement can leave the
    run RUNNING (README, "When things go wrong"), and SQLAlchemy logs a traceback."""
    lesson = copy_lesson("demo.py", tmp_path)
    process = start_script(
        str(lesson), "--n-estimators", "2000", cwd=tmp_path, env=no_tracking_uri()
    )
    table_logged = "key = 'mlflow.loggedArtifacts'"
    db = tmp_path / "mlflow.db"
    returncode, stderr = interrupt_when(db, "tags", 1, process, signum, where=table_logged)
    assert (returncode, stderr.strip().splitlines()[-1]) == (exit_code, line), stderr
    assert "Traceback" not in stderr
    [run] = all_runs(mlflow.MlflowClient(sqlite_uri(tmp_path / "mlflow.db")))
    assert run.info.status == "FAILED"


def test_interrupted_while_its_model_is_logged(tmp_path):
    """Ctrl+C while MLflow writes the model: the run is FAILED, and the model MLflow had begun
    stays PENDING (README, "When things go wrong")."""
    lesson = copy_lesson("demo.py", tmp_path)
    process = start_script(str(lesson), cwd=tmp_path, env=no_tracking_uri())
    returncode, stderr = interrupt_when(tmp_path / "mlflow.db", "logged_models", 1, process)
    assert returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "Stopped by Ctrl+C: a run under way is marked FAILED."
    client = mlflow.MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))
    [run] = all_runs(client)
    [model] = client.search_logged_models([run.info.experiment_id])
    assert run.info.status == "FAILED"
    assert model.status == LoggedModelStatus.PENDING


# Without write-ahead logging (the lesson's "Where the runs go"), the run stayed RUNNING after
# statements 4, 8 and 14. MLflow still loses it after statement 10, its write of the params
# (README, "When things go wrong"): a test of that would wait out MLflow's 20 s lock timeout.
@pytest.mark.parametrize("statement", [2, 4, 8, 14])
def test_an_interrupt_just_after_a_store_statement_still_fails_the_run(
    tmp_path, monkeypatch, statement
):
    """Ctrl+C can land anywhere; the worst moment is just after MLflow ran a SQLite statement,
    its cursor still open. Raised there, the run must still end FAILED, not stay RUNNING."""
    import sqlalchemy.engine.cursor

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    demo = load_lesson(copy_lesson("demo.py", tmp_path))
    results_left = {"count": None}
    real_result = sqlalchemy.engine.cursor.CursorResult.__init__
    real_log_params = mlflow.log_params

    def result_then_interrupt(self, *args, **kwargs):
        real_result(self, *args, **kwargs)
        if results_left["count"] is not None:
            results_left["count"] -= 1
            if results_left["count"] == 0:
                results_left["count"] = None
                raise KeyboardInterrupt

    def log_params_counting_results(params):
        results_left["count"] = statement
        return real_log_params(params)

    monkeypatch.setattr(sqlalchemy.engine.cursor.CursorResult, "__init__", result_then_interrupt)
    monkeypatch.setattr(mlflow, "log_params", log_params_counting_results)
    with pytest.raises(KeyboardInterrupt):
        demo.main(["--n-estimators", "5"])
    monkeypatch.undo()
    [run] = all_runs(mlflow.MlflowClient(sqlite_uri(tmp_path / "mlflow.db")))
    assert run.info.status == "FAILED"
