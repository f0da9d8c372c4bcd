"""spark/train_spark_forest.py on real Spark: the sweep's runs, the registered best, its alias.

One local Spark session, started by the lesson's own ``spark_session``, serves
the in-process tests: the lesson finds it active and leaves it open. Copies of
the lesson's folder run as subprocesses: one stopped with Ctrl+C in its first
fit, one with SIGTERM while Java starts. The tests skip where Java or pyspark
is missing, and fail in CI.
"""

import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version

import mlflow
import pytest
from conftest import (
    REPO_ROOT,
    all_runs,
    copy_lesson,
    load_lesson,
    participant_env,
    require,
    run_script,
    sqlite_uri,
)

LESSON = "spark/train_spark_forest.py"
EXPERIMENT = "spark-breast-cancer"
MODEL = "spark_breast_cancer_classifier"
MODEL_TYPE = "pyspark.ml RandomForestClassifier"
HAS_PYSPARK = importlib.util.find_spec("pyspark") is not None
NO_SPARK = "Spark needs pyspark (pip install -r spark/requirements.txt) and Java 17 or newer"


def require_spark():
    require(HAS_PYSPARK and shutil.which("java"), NO_SPARK)


@pytest.fixture(scope="module")
def spark():
    require_spark()
    with pytest.MonkeyPatch.context() as patch:
        # A pytest-xdist worker's __main__ has no file, which pyspark's Connect check
        # (run when MLflow logs a Spark model) takes for a doctest run: it would exit.
        patch.setattr(sys.modules["__main__"], "__file__", "pytest", raising=False)
        with load_lesson(LESSON).spark_session("local[2]") as session:
            yield session


@pytest.fixture(scope="module")
def sweeps(spark, tmp_path_factory, empty_store_template):
    """Two sweeps in one store: a stump, then a better forest beside a stump."""
    folder = tmp_path_factory.mktemp("spark_sweeps")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    uri = sqlite_uri(folder / "mlflow.db")
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        lesson = load_lesson(LESSON)
        results = [lesson.main(["--grid", grid]) for grid in ("1:1", "1:1,10:4")]
    return {"uri": uri, "results": results, "printed": printed.getvalue(), "lesson": lesson}


@pytest.fixture
def client(sweeps):
    mlflow.set_tracking_uri(sweeps["uri"])  # for the model URIs; reset after each test
    return mlflow.MlflowClient(sweeps["uri"])


def test_each_configuration_is_a_child_run(sweeps, client):
    sweep = sweeps["results"][1]
    parent = client.get_run(sweep["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert client.get_experiment(parent.info.experiment_id).name == EXPERIMENT
    assert parent.data.params == {"grid": "1:1,10:4", "test_size": "0.25", "seed": "42"}
    assert parent.data.tags["spark_master"] == "local[*]"
    assert parent.data.tags["model_type"] == MODEL_TYPE
    runs = [
        r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert sorted(run.info.run_name for run in runs) == ["spark_rf_n10_d4", "spark_rf_n1_d1"]
    for run in runs:
        assert run.info.status == "FINISHED"
        n_trees, max_depth = run.info.run_name.removeprefix("spark_rf_n").split("_d")
        assert run.data.params == {
            "n_estimators": n_trees,
            "max_depth": max_depth,
            "seed": "42",
            "model_type": MODEL_TYPE,
        }
        assert run.data.tags["model_type"] == MODEL_TYPE
        assert run.data.tags["dataset"] == "sklearn breast_cancer"
        assert set(run.data.metrics) == {"roc_auc", "accuracy"}
        assert 0.8 <= run.data.metrics["roc_auc"] < 1.0
        assert 0.8 <= run.data.metrics["accuracy"] < 1.0
        contexts = {i.dataset.name: i.tags[0].value for i in run.inputs.dataset_inputs}
        assert contexts == {"bc_training": "training", "bc_evaluation": "evaluation"}
        held_out = client.load_table(
            run.info.experiment_id, "held_out_rows.json", [run.info.run_id]
        )
        assert len(held_out) == 143 and set(held_out["benign"]) == {0.0, 1.0}
    best = max(run.data.metrics["roc_auc"] for run in runs)
    assert parent.data.metrics["best_roc_auc"] == best == sweep["best"]["roc_auc"]
    assert sweep["best"]["run_name"] == "spark_rf_n10_d4"
    assert {run.info.status for run in all_runs(client)} == {"FINISHED"}


def test_the_model_is_a_spark_run_artifact_with_pinned_requirements(sweeps, client):
    best = sweeps["results"][1]["best"]
    assert best["model_uri"].startswith("runs:/") and best["model_uri"].endswith("/model")
    info = mlflow.models.get_model_info(best["model_uri"])
    assert set(info.flavors) == {"spark", "python_function"}
    assert info.signature.inputs.input_names()[0] == "mean radius"
    assert len(info.signature.inputs.input_names()) == 30
    assert info.signature.outputs.input_names() == ["prediction"]
    requirements = mlflow.artifacts.download_artifacts(f"{best['model_uri']}/requirements.txt")
    with open(requirements) as lines:
        pinned = lines.read().split()
    assert pinned == [f"mlflow=={mlflow.__version__}", f"pyspark=={version('pyspark')}"]
    example = mlflow.artifacts.download_artifacts(f"{best['model_uri']}/input_example.json")
    with open(example) as rows:
        assert len(json.load(rows)["data"]) == 3


def test_the_best_of_each_sweep_is_a_version_and_the_champion_moves_to_a_better_one(sweeps, client):
    results = sweeps["results"]
    assert [(r["version"], r["old"], r["new"]) for r in results] == [
        ("1", None, "1"),
        ("2", "1", "2"),
    ]
    for result in results:
        version = client.get_model_version(MODEL, result["version"])
        assert client.get_run(version.run_id).info.run_name == result["best"]["run_name"]
        assert version.tags == {"roc_auc": f"{result['best']['roc_auc']:.4f}"}
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


def test_a_forest_no_better_than_the_champion_is_a_version_without_the_alias(sweeps, client):
    stump = sweeps["results"][0]["best"]  # registered again, with the roc_auc it had
    version, old, new = sweeps["lesson"].register_and_crown(client, stump)
    assert (old, new) == ("2", "2") and int(version) >= 3
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


def test_the_champion_loads_back_and_predicts_the_held_out_rows(sweeps, spark, client):
    champion = client.get_model_version_by_alias(MODEL, "champion")
    experiment_id = client.get_run(champion.run_id).info.experiment_id
    held_out = client.load_table(experiment_id, "held_out_rows.json", [champion.run_id])
    model = mlflow.spark.load_model(f"models:/{MODEL}@champion")
    scored = model.transform(spark.createDataFrame(held_out)).toPandas()
    accuracy = (scored["prediction"] == scored["benign"]).mean()
    assert accuracy == pytest.approx(sweeps["results"][1]["best"]["accuracy"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    assert list(pyfunc.predict(held_out.drop(columns="benign"))) == list(scored["prediction"])


def test_prints_the_forests_the_champion_and_where_to_look(sweeps):
    second = sweeps["printed"].split("Sweep ")[2].splitlines()
    assert second[0].endswith(" over the grid 1:1,10:4")
    assert second[1].startswith("  spark_rf_n1_d1   roc_auc 0.")
    assert second[2].startswith("  spark_rf_n10_d4  roc_auc 0.")
    assert second[3:8] == [
        f"Best by roc_auc: spark_rf_n10_d4, now version 2 of {MODEL}",
        "Champion: version 2 (was 1).",
        f"Champion URI: models:/{MODEL}@champion",
        "Score it:     python spark/score_on_spark.py",
        f"Compare:      python compare_runs.py --experiment {EXPERIMENT}",
    ]
    parent = sweeps["results"][1]["parent_run_id"]
    assert second[8].startswith("See it:       http://127.0.0.1:5000/#/experiments/")
    assert second[8].endswith(f"/runs/{parent}?workflowType=machine_learning")
    assert "Starting Spark" not in sweeps["printed"]  # the open session was used


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--grid", "10", "--grid takes pairs like 10:3,40:6, got '10'"),
        ("--grid", "10:x", "--grid takes pairs like 10:3,40:6, got '10:x'"),
        ("--grid", "10:0", "a depth from 1 to 30"),
        ("--grid", "10:3,10:31", "a depth from 1 to 30"),
        ("--seed", "-1", "--seed must be a whole number from 0 to 4294967295"),
        ("--master", "local[0]", "--master must be local[*], local[N]"),
        ("--master", "localhost", "--master must be local[*], local[N]"),
    ],
)
def test_a_bad_flag_is_one_line_before_spark_or_a_run(tracking_store, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err.splitlines()[-1] and "Traceback" not in err
    assert [e.name for e in mlflow.MlflowClient(tracking_store).search_experiments()] == ["Default"]


def test_a_copy_alone_refuses_a_bad_flag_and_logs_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = copy_lesson(LESSON, tmp_path / "spark")
    result = run_script(str(copy), "--grid", "10:0", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "train_spark_forest.py: error: --grid needs at least 1 tree, and a depth from 1 to 30 "
        "(Spark's limit)"
    )
    assert result.stdout == "" and sorted(os.listdir(tmp_path)) == ["spark"]


def test_without_java_one_sentence_and_no_run(tracking_store, tmp_path, monkeypatch):
    require(HAS_PYSPARK, NO_SPARK)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main(["--grid", "1:1"])
    assert exit_info.value.code == (
        "Spark needs Java 17 or newer, and there is none: see spark/README.md."
    )
    assert all_runs(mlflow.MlflowClient(tracking_store)) == []


def test_without_pyspark_one_sentence_and_no_run(tracking_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # `import pyspark` fails, as if missing
    with pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main(["--grid", "1:1"])
    assert exit_info.value.code == (
        "This lesson needs pyspark: pip install -r spark/requirements.txt"
    )
    assert all_runs(mlflow.MlflowClient(tracking_store)) == []


def start_in_a_copy(tmp_path, *args):
    """The lesson's folder copied alone (lesson and log configuration) and started as a
    participant starts it, in a process group of its own, as a terminal starts a command."""
    shutil.copytree(REPO_ROOT / "spark", tmp_path / "spark", ignore=shutil.ignore_patterns("*.md"))
    return subprocess.Popen(
        [sys.executable, "spark/train_spark_forest.py", *args],
        cwd=tmp_path,
        env={k: v for k, v in participant_env().items() if k != "MLFLOW_TRACKING_URI"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(state, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not state():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{state.__doc__} not within {timeout} s"
        time.sleep(0.05)


def java_children(pid):
    """The Java processes ``pid`` started: pyspark's is a direct child."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = [int(child) for child in children.read().split()]
    return [child for child in pids if os.readlink(f"/proc/{child}/exe").endswith("/java")]


def running(pid):
    """True while ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_and_wait(process, signum, whole_group):
    """Send ``signum``; return the exit code, stderr, and whether Java outlived Python."""
    [java] = java_children(process.pid)
    try:
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while running(java) and time.monotonic() < deadline:
        time.sleep(0.1)  # Java leaves once Python has gone: stdin closed, or stopped
    return process.returncode, err, running(java)


def test_ctrl_c_mid_training_fails_the_runs_in_one_line_and_stops_java(tmp_path):
    """Ctrl+C in a terminal: SIGINT to the whole process group (Java ignores it), once
    the first forest's run has logged its held-out rows, so in its fit."""
    require_spark()
    process = start_in_a_copy(tmp_path, "--grid", "20:5,21:5")
    db = tmp_path / "mlflow.db"

    def first_forest_fitting():
        """the first forest's held-out rows logged"""
        query = "SELECT count(*) FROM tags WHERE key = 'mlflow.loggedArtifacts'"
        readable = contextlib.suppress(sqlite3.OperationalError)  # no store, or no table, yet
        with readable, contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as rows:
            return rows.execute(query).fetchone()[0] > 0
        return False

    wait_for(first_forest_fitting, process)
    code, err, java_left = stop_and_wait(process, signal.SIGINT, whole_group=True)
    assert code == 130, err
    assert err.splitlines()[-1] == "Stopped by Ctrl+C: a run under way is marked FAILED.", err
    assert "Traceback" not in err, err
    runs = all_runs(mlflow.MlflowClient(sqlite_uri(db)))
    assert len(runs) == 2 and "spark_rf_n20_d5" in {run.info.run_name for run in runs}
    assert {run.info.status for run in runs} == {"FAILED"}
    assert not java_left


def test_sigterm_while_spark_starts_waits_for_it_then_stops_java(tmp_path):
    """``kill`` (to Python alone) while Java starts: Java would otherwise run on, alone."""
    require_spark()
    process = start_in_a_copy(tmp_path, "--grid", "1:1")

    def java_starting():
        """Spark's Java process started"""
        return java_children(process.pid)

    wait_for(java_starting, process)
    code, err, java_left = stop_and_wait(process, signal.SIGTERM, whole_group=False)
    assert code == 143, err
    assert err.splitlines()[-1] == "Stopped by SIGTERM: a run under way is marked FAILED.", err
    assert "Traceback" not in err, err
    assert all_runs(mlflow.MlflowClient(sqlite_uri(tmp_path / "mlflow.db"))) == []
    assert not java_left
