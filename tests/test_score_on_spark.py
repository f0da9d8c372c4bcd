"""spark/score_on_spark.py on real Spark: the forest loaded back, a scikit-learn model as a UDF.

The module's store is the one spark/README.md's commands leave: the README
executor runs them as printed in a fresh clone (a Spark sweep's champion, the
comparison, an iris sweep's champion, then this lesson), and a test checks what
they printed. The tests then run the lesson in-process on that store, in one
local Spark session started by the lesson's own ``spark_session``. The tests skip
where Java or pyspark is missing, and fail in CI.
"""

import contextlib
import importlib.util
import io
import os
import shutil
import sys

import mlflow
import pytest
from conftest import all_runs, copy_lesson, load_lesson, require, run_script, sqlite_uri
from readme_executor import assert_prints_what_it_shows, fresh_clone, readmes_run_by, walk

LESSON = "spark/score_on_spark.py"
SPARK_MODEL = "models:/spark_breast_cancer_classifier@champion"
IRIS_MODEL = "models:/iris_classifier@champion"
HAS_PYSPARK = importlib.util.find_spec("pyspark") is not None
NO_SPARK = "Spark needs pyspark (pip install -r spark/requirements.txt) and Java 17 or newer"
[README] = readmes_run_by("test_score_on_spark")


@pytest.fixture(scope="module")
def spark():
    require(HAS_PYSPARK and shutil.which("java"), NO_SPARK)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYSPARK_PYTHON", sys.executable)  # as the lesson sets it; undone after
        # A pytest-xdist worker's __main__ has no file, which pyspark's Connect check
        # (run when MLflow logs a Spark model) takes for a doctest run: it would exit.
        patch.setattr(sys.modules["__main__"], "__file__", "pytest", raising=False)
        with load_lesson(LESSON).spark_session("local[2]") as session:
            yield session


@contextlib.contextmanager
def using(uri, folder):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        yield


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory):
    """A fresh clone in which spark/README.md's commands ran, and what they printed
    that the README shows otherwise."""
    root = fresh_clone(tmp_path_factory.mktemp("spark_readme") / "mlflow-workshop")
    drifted = walk(README, root)
    return {"uri": sqlite_uri(root / "mlflow.db"), "folder": root, "drifted": drifted}


def test_the_readmes_commands_print_what_it_shows(store):
    assert_prints_what_it_shows(README, store["drifted"])


@pytest.fixture(scope="module")
def scored(store):
    printed = io.StringIO()
    with using(store["uri"], store["folder"]), contextlib.redirect_stdout(printed):
        result = load_lesson(LESSON).main(["--rows", "3"])
    return {**result, "printed": printed.getvalue()}


@pytest.fixture
def client(store):
    mlflow.set_tracking_uri(store["uri"])  # for the model URIs; reset after each test
    return mlflow.MlflowClient(store["uri"])


def test_the_spark_model_predicts_the_rows_its_run_held_out(scored, client):
    champion = client.get_model_version_by_alias("spark_breast_cancer_classifier", "champion")
    run = client.get_run(champion.run_id)
    forest = scored["spark_model"]
    # The same rows, the same forest: the accuracy its training run logged.
    assert forest["accuracy"] == pytest.approx(run.data.metrics["accuracy"])
    table = forest["table"]
    assert len(table) == 143 and list(table.columns) == ["benign", "prediction", "P(benign)"]
    assert table["P(benign)"].between(0, 1).all()
    assert ((table["P(benign)"] > 0.5) == (table["prediction"] == 1)).all()
    assert forest["pyfunc"] == list(table["prediction"])


def test_the_spark_udf_predicts_what_the_sklearn_model_predicts(scored, client):
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    experiment_id = client.get_run(champion.run_id).info.experiment_id
    held_out = client.load_table(experiment_id, "held_out_rows.json", [champion.run_id])
    expected = list(mlflow.sklearn.load_model(IRIS_MODEL).predict(held_out.drop(columns="species")))
    udf = scored["spark_udf"]
    assert udf["spark_udf"] == udf["predict"] == expected
    assert len(expected) == 45 and set(expected) == {"setosa", "versicolor", "virginica"}


def test_prints_both_models_and_how_they_compare(scored):
    lines = scored["printed"].splitlines()
    assert lines[0] == f"{SPARK_MODEL}: a PipelineModel, on the 143 rows its run held out"
    assert lines[1].split() == ["benign", "prediction", "P(benign)"] and len(lines[2:5]) == 3
    assert lines[5].startswith("  accuracy on all 143 rows: 0.")
    assert lines[6] == "  loaded with pyfunc: the same predictions"
    assert lines[8].startswith(f"{IRIS_MODEL} as a spark_udf, 45 rows in ")
    assert "  equal to the model's own predict: yes, all 45 rows" in lines
    assert lines[-1] == f"  mlflow models serve -m {IRIS_MODEL} --port 5001 --env-manager local"
    assert "Starting Spark" not in scored["printed"]  # the open session was used


def test_a_missing_model_names_the_lesson_to_run(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main([])
    message = str(exit_info.value.code)
    assert message.startswith(f"Cannot find {SPARK_MODEL} (")
    assert message.endswith("): run `python spark/train_spark_forest.py` first.")
    assert all_runs(mlflow.MlflowClient(tracking_store)) == []


def test_a_model_of_another_flavor_is_refused(store):
    with using(store["uri"], store["folder"]), pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main(["--spark-model-uri", IRIS_MODEL])
    assert exit_info.value.code == (
        f"{IRIS_MODEL} is not a spark model; it has python_function, sklearn."
    )


def test_a_champion_whose_run_was_deleted_is_one_sentence_before_spark(store):
    """A run deleted in the UI: MLflow's load_table would not find its rows."""
    client = mlflow.MlflowClient(store["uri"])
    champion = client.get_model_version_by_alias("iris_classifier", "champion")
    client.delete_run(champion.run_id)
    try:
        with using(store["uri"], store["folder"]), pytest.raises(SystemExit) as exit_info:
            load_lesson(LESSON).main([])
    finally:
        client.restore_run(champion.run_id)
    assert exit_info.value.code == (
        f"The run {champion.run_id} that logged {IRIS_MODEL} was deleted: "
        f"`mlflow runs restore --run-id {champion.run_id}` brings it back."
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--rows", "0", "--rows must be at least 1"),
        ("--master", "local[-1]", "--master must be local[*], local[N]"),
    ],
)
def test_a_bad_flag_is_one_line_before_spark(capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        load_lesson(LESSON).main([flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_a_copy_alone_without_runs_says_which_lesson_to_run(tmp_path, monkeypatch):
    """Copied alone into spark/ of an empty folder, it looks for the store one folder up."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = copy_lesson(LESSON, tmp_path / "spark")
    result = run_script(str(copy), cwd=tmp_path / "spark")
    assert result.returncode == 1
    assert result.stderr == (
        "There are no runs yet: run `python spark/train_spark_forest.py` first.\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["spark"]
