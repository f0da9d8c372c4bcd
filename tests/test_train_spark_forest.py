"""train_spark_forest.py on real Spark: the sweep's runs, the registered best and its alias.

One local Spark session serves the whole module (starting one takes 10 to 20
s); the lesson finds it active and uses it. The tests skip with the reason
where Java or pyspark is missing, and fail in CI.
"""

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time

import mlflow
import pytest
from conftest import REPO_ROOT, all_runs, new_store, require, require_spark, run_script, using_store

import train_spark_forest

MODEL = "spark_breast_cancer_classifier"
EXPERIMENT = "spark-breast-cancer"
# The lesson's own grid, so that the UI picture is what a participant sees.
DEFAULT_GRID = "10:3,40:6"


@pytest.fixture(scope="module")
def sweep_store(spark, tmp_path_factory, empty_store_template):
    folder, uri = new_store(tmp_path_factory, empty_store_template, "spark_sweep")
    with using_store(uri, folder):
        result = train_spark_forest.main([])
    return {"uri": uri, "folder": folder, **result}


@pytest.fixture
def sweep(sweep_store):
    with using_store(sweep_store["uri"], sweep_store["folder"]):
        yield sweep_store


@pytest.fixture
def sweep_client(sweep):
    return mlflow.MlflowClient(sweep["uri"])


def children(client, parent_run_id):
    runs = all_runs(client)
    return [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_run_id]


def test_each_configuration_is_a_child_run(sweep, sweep_client):
    parent = sweep_client.get_run(sweep["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert sweep_client.get_experiment(parent.info.experiment_id).name == EXPERIMENT
    assert parent.data.params == {"grid": DEFAULT_GRID, "test_size": "0.25", "seed": "42"}
    assert parent.data.tags["spark_master"] == "local[*]"
    runs = children(sweep_client, parent.info.run_id)
    assert sorted(run.info.run_name for run in runs) == ["spark_rf_n10_d3", "spark_rf_n40_d6"]
    assert len(all_runs(sweep_client)) == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        n_trees, max_depth = run.info.run_name.removeprefix("spark_rf_n").split("_d")
        assert run.data.params == {
            "n_estimators": n_trees,
            "max_depth": max_depth,
            "seed": "42",
            "model_type": "pyspark.ml RandomForestClassifier",
        }
        assert run.data.tags["model_type"] == "pyspark.ml RandomForestClassifier"
        assert run.data.tags["dataset"] == "sklearn breast_cancer"
        assert set(run.data.metrics) == {"roc_auc", "accuracy"}
        # Ten trees of depth 3 already separate the two diagnoses well; AUC 1.0
        # on 143 held-out rows would be suspicious.
        assert 0.9 <= run.data.metrics["roc_auc"] < 1.0
        assert 0.85 <= run.data.metrics["accuracy"] <= 1.0
        contexts = {i.dataset.name: i.tags[0].value for i in run.inputs.dataset_inputs}
        assert contexts == {"bc_training": "training", "bc_evaluation": "evaluation"}
        held_out = sweep_client.load_table(
            run.info.experiment_id, "held_out_rows.json", [run.info.run_id]
        )
        assert len(held_out) == 143 and set(held_out["benign"]) == {0.0, 1.0}
    best = max(run.data.metrics["roc_auc"] for run in runs)
    assert parent.data.metrics["best_roc_auc"] == best == sweep["best"]["roc_auc"]


def test_model_is_a_spark_run_artifact_with_pinned_requirements(sweep, sweep_client):
    run_id = sweep_client.get_model_version(MODEL, "1").run_id
    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert set(info.flavors) == {"spark", "python_function"}
    assert info.signature.inputs.input_names()[0] == "mean radius"
    assert len(info.signature.inputs.input_names()) == 30
    assert info.signature.outputs.input_names() == ["prediction"]
    path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/requirements.txt")
    import pyspark

    with open(path) as requirements:
        pinned = requirements.read().split()
    assert pinned == [
        f"mlflow=={mlflow.__version__}",
        f"pyspark=={pyspark.__version__}",
    ]
    example = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model/input_example.json")
    with open(example) as rows:
        assert len(json.load(rows)["data"]) == 3


def test_only_the_best_is_registered_and_it_is_champion(sweep, sweep_client):
    [version] = sweep_client.search_model_versions(f"name = '{MODEL}'")
    best_run = sweep_client.get_run(version.run_id)
    assert best_run.info.run_name == sweep["best"]["run_name"]
    assert best_run.data.metrics["roc_auc"] == sweep["best"]["roc_auc"]
    assert version.tags == {"roc_auc": f"{sweep['best']['roc_auc']:.4f}"}
    champion = sweep_client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1" == sweep["new"] and sweep["old"] is None


def test_champion_loads_and_predicts_the_held_out_rows(sweep, spark, sweep_client):
    champion = sweep_client.get_model_version_by_alias(MODEL, "champion")
    experiment_id = sweep_client.get_run(champion.run_id).info.experiment_id
    held_out = sweep_client.load_table(experiment_id, "held_out_rows.json", [champion.run_id])
    model = mlflow.spark.load_model(f"models:/{MODEL}@champion")
    scored = model.transform(spark.createDataFrame(held_out)).toPandas()
    accuracy = (scored["prediction"] == scored["benign"]).mean()
    assert accuracy == pytest.approx(sweep["best"]["accuracy"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    assert list(pyfunc.predict(held_out.drop(columns="benign"))) == list(scored["prediction"])


def test_compare_runs_ranks_the_sweep_by_roc_auc(sweep, capsys):
    import compare_runs

    result = compare_runs.main(["--experiment", EXPERIMENT])
    out = capsys.readouterr().out
    assert result["best_run"].info.run_name == sweep["best"]["run_name"]
    assert "roc_auc" in out and "spark_rf_n40_d6" in out


def test_alias_moves_only_for_a_better_forest(spark, tracking_store, client, capsys):
    first = train_spark_forest.main(["--grid", "1:1"])
    better = train_spark_forest.main(["--grid", "10:4"])
    worse = train_spark_forest.main(["--grid", "1:1"])
    assert (first["old"], first["new"]) == (None, "1")
    assert better["best"]["roc_auc"] > first["best"]["roc_auc"]
    assert (better["old"], better["new"]) == ("1", "2")
    assert (worse["version"], worse["old"], worse["new"]) == ("3", "2", "2")
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"
    out = capsys.readouterr().out
    assert "The champion stays version 2." in out
    assert all(run.info.status == "FINISHED" for run in all_runs(client))


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--grid", "10", "pairs like 50:3,100:5"),
        ("--grid", "10:0", "pairs like 50:3,100:5"),
        ("--grid", "10:3,10:31", "at most 30 deep, got 10:31"),
        ("--master", "local[0]", "expected local[*], local[N]"),
        ("--master", "localhost", "expected local[*], local[N]"),
        ("--seed", "-1", "from 0 to 4294967295"),
    ],
)
def test_bad_flag_exits_2_before_spark_or_a_run(
    tracking_store, client, capsys, flag, value, message
):
    with pytest.raises(SystemExit) as exit_info:
        train_spark_forest.main([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err and "Traceback" not in err
    assert all_runs(client) == []


def test_without_java_one_sentence_and_exit_1(tmp_path, tracking_store, client, monkeypatch):
    # pyspark is needed, or the lesson says first that it is missing.
    require(
        importlib.util.find_spec("pyspark"),
        "pyspark is not installed: pip install -r requirements-spark.txt",
    )
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(SystemExit) as exit_info:
        train_spark_forest.main([])
    assert exit_info.value.code == (
        "Spark runs on Java, and there is no java in JAVA_HOME: install Java 17 or newer "
        "(Debian, Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install "
        "openjdk@17; Windows: Eclipse Temurin 17) or set JAVA_HOME."
    )
    assert all_runs(client) == []


# What the README says the lesson prints to stderr besides its own lines ("Train and
# track a Spark forest"); anything else (Spark's log, log4j, a warning) is news.
README_STDERR = (
    "WARNING: Using incubator modules: jdk.incubator.vector",
    "INFO mlflow.spark: File '",
    "Successfully registered model 'spark_breast_cancer_classifier'.",
    "Created version '1' of model 'spark_breast_cancer_classifier'.",
)


def test_prints_to_stderr_only_what_the_readme_explains(tracking_store, client, tmp_path):
    """A participant's run, in a process of its own: Spark started by the lesson."""
    require_spark()
    result = run_script(str(REPO_ROOT / "train_spark_forest.py"), "--grid", "2:2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    logged_at = r"^\d{4}/\d\d/\d\d [\d:]{8} "  # MLflow's log lines start with the time
    lines = [re.sub(logged_at, "", line) for line in result.stderr.splitlines()]
    unexplained = [line for line in lines if not line.startswith(README_STDERR)]
    assert unexplained == []
    assert {run.info.status for run in all_runs(client)} == {"FINISHED"}


def test_without_pyspark_one_sentence_and_exit_1(tmp_path, tracking_store, client):
    # A new process, so that the lesson's own imports meet the missing pyspark: a
    # module named pyspark that cannot be imported shadows the installed one.
    (tmp_path / "shadow").mkdir()
    (tmp_path / "shadow" / "pyspark.py").write_text("raise ImportError('no pyspark here')\n")
    result = run_script("train_spark_forest.py", env={"PYTHONPATH": str(tmp_path / "shadow")})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "This lesson needs pyspark; install it: pip install -r requirements-spark.txt."
    )
    assert all_runs(client) == []


def interrupt_in_a_terminal(tmp_path, client, started, *args):
    """Start the lesson, wait until ``started(runs, out)``, then press Ctrl+C as a terminal
    does: SIGINT to the whole process group, Python and the JVM (which ignores it)."""
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "train_spark_forest.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline, out = time.monotonic() + 120, ""
        while not started(all_runs(client), out):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            out += process.stdout.readline() if "Starting Spark" not in out else ""
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    time.sleep(2)  # the JVM leaves when Python has gone
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)
    assert process.returncode == -signal.SIGINT, err  # a shell shows exit status 130
    return err


def test_ctrl_c_in_a_fit_fails_the_runs_in_one_sentence(tmp_path, tracking_store, client):
    require_spark()

    def training(runs, out):
        return any(run.data.tags.get("mlflow.parentRunId") for run in runs)

    err = interrupt_in_a_terminal(tmp_path, client, training, "--grid", "5:3,6:3,7:3,8:3")
    assert "Traceback" not in err and "Exception" not in err, err
    assert re.fullmatch(
        r"Stopped by Ctrl\+C: runs? \w+( and \w+)? (is|are) marked FAILED, with what (it|they) "
        r"logged\.",
        err.strip().splitlines()[-1],
    ), err
    assert {run.info.status for run in all_runs(client)} == {"FAILED"}


def test_ctrl_c_while_spark_starts_leaves_no_java_behind(tmp_path, tracking_store, client):
    """Stopped half-way through its start, Spark's JVM would live on (and print a trace)."""
    require_spark()
    err = interrupt_in_a_terminal(tmp_path, client, lambda runs, out: "Starting Spark" in out)
    assert err.strip().splitlines()[-1] == "Stopped by Ctrl+C: no run was being logged.", err
    assert "Exception" not in err, err
    assert all_runs(client) == []


def test_ui_ranks_the_sweep_by_roc_auc(sweep, tmp_path):
    """The MLflow UI over the sweep's store, sorted by roc_auc: the README's picture.

    ``UPDATE_SCREENSHOTS=1`` saves it as docs/images/spark_runs.png.
    """
    import re
    import shutil

    from conftest import BackgroundProcess, free_port, wait_for_http
    from test_ui import (
        NO_TELEMETRY,
        expect,
        participant_browser,
        require_browser,
        screenshot,
        ui_command,
    )

    require_browser()  # before starting a server for nothing
    shutil.copy(REPO_ROOT / "ui.env", sweep["folder"])
    port = free_port()
    command = ui_command(port, store_uri=sweep["uri"])
    log = tmp_path / "ui.log"
    url = f"http://127.0.0.1:{port}"
    with BackgroundProcess(command, log, env=NO_TELEMETRY, cwd=sweep["folder"]) as server:
        wait_for_http(f"{url}/health", server.process)
        with participant_browser(url, viewport={"width": 1440, "height": 800}) as context:
            page = context.new_page()
            page.goto(f"{url}/#/experiments")
            page.get_by_role("link", name=EXPERIMENT, exact=True).click()
            # Sort by the metric, then show the params and the accuracy beside it.
            page.get_by_role("button", name=re.compile("^Sort")).click()
            page.get_by_text("roc_auc", exact=True).click()
            page.keyboard.press("Escape")
            page.get_by_role("button", name="Columns").click()
            for column in ["Dataset", "Source", "accuracy", "max_depth", "n_estimators"]:
                page.get_by_role("dialog").get_by_text(column, exact=True).click()
            page.keyboard.press("Escape")
            # The table's rows are placed on screen by their row-index: the best is on top.
            best = page.get_by_role("link", name=sweep["best"]["run_name"], exact=True)
            expect(page.get_by_role("row").filter(has=best).first).to_have_attribute(
                "row-index", "0"
            )
            expect(page.get_by_role("link", name=re.compile(f"^{MODEL}"))).to_be_visible()
            expect(page.get_by_role("link", name="spark_rf_n40_d6")).to_be_visible()
            screenshot(page, "spark_runs", height=380)
