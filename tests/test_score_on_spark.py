"""score_on_spark.py on real Spark: the Spark forest loaded back, a scikit-learn model as a UDF.

One store holds what the lesson needs: a Spark sweep's champion and an iris
sweep's champion. One local Spark session serves the module.
"""

import mlflow
import pytest
from conftest import all_runs, new_store, using_store

import score_on_spark
import train_iris_sweep
import train_spark_forest

SPARK_MODEL = "models:/spark_breast_cancer_classifier@champion"
IRIS_MODEL = "models:/iris_classifier@champion"


@pytest.fixture(scope="module")
def store(spark, tmp_path_factory, empty_store_template):
    folder, uri = new_store(tmp_path_factory, empty_store_template, "score_on_spark")
    with using_store(uri, folder):
        train_spark_forest.main(["--grid", "10:4"])
        train_iris_sweep.main(["--grid", "2:2,3:1"])
    return {"uri": uri, "folder": folder}


@pytest.fixture(scope="module")
def scored(store):
    with using_store(store["uri"], store["folder"]):
        return score_on_spark.main(["--rows", "3"])


@pytest.fixture
def in_store(store):
    with using_store(store["uri"], store["folder"]):
        yield mlflow.MlflowClient(store["uri"])


def test_spark_model_predicts_its_held_out_rows(scored, in_store):
    champion = in_store.get_model_version_by_alias("spark_breast_cancer_classifier", "champion")
    run = in_store.get_run(champion.run_id)
    forest = scored["spark_model"]
    # The same rows, the same forest: the accuracy its training run logged.
    assert forest["accuracy"] == pytest.approx(run.data.metrics["accuracy"])
    table = forest["table"]
    assert len(table) == 143 and list(table.columns) == ["benign", "prediction", "P(benign)"]
    assert table["P(benign)"].between(0, 1).all()
    assert ((table["P(benign)"] > 0.5) == (table["prediction"] == 1.0)).all()
    assert forest["pyfunc"] == list(table["prediction"])


def test_spark_udf_predictions_equal_the_sklearn_models(scored, in_store):
    champion = in_store.get_model_version_by_alias("iris_classifier", "champion")
    experiment_id = in_store.get_run(champion.run_id).info.experiment_id
    held_out = in_store.load_table(experiment_id, "held_out_rows.json", [champion.run_id])
    sklearn_model = mlflow.sklearn.load_model(IRIS_MODEL)
    expected = list(sklearn_model.predict(held_out.drop(columns="species")))
    udf = scored["spark_udf"]
    assert udf["spark_udf"] == udf["predict"] == expected
    assert len(expected) == 45 and set(expected) == {"setosa", "versicolor", "virginica"}


def test_prints_both_models_and_the_comparison(store, capsys):
    with using_store(store["uri"], store["folder"]):
        score_on_spark.main(["--rows", "2"])
    out = capsys.readouterr().out
    assert f"{SPARK_MODEL}: a PipelineModel, on the 143 rows its run held out" in out
    assert "loaded with pyfunc: the same predictions" in out
    assert f"{IRIS_MODEL} as a spark_udf, 45 rows in" in out
    assert "equal to the model's own predict: yes, all 45 rows" in out


def test_missing_model_says_which_lesson_to_run(spark, tracking_store, client):
    with pytest.raises(SystemExit) as exit_info:
        score_on_spark.main([])
    message = str(exit_info.value.code)
    assert message.startswith(f"Cannot find {SPARK_MODEL}")
    assert message.endswith("run `python train_spark_forest.py` first.")
    assert all_runs(client) == []


def test_a_model_of_another_flavor_is_refused(store):
    with using_store(store["uri"], store["folder"]), pytest.raises(SystemExit) as exit_info:
        score_on_spark.main(["--spark-model-uri", IRIS_MODEL])
    assert str(exit_info.value.code) == (
        f"{IRIS_MODEL} is not a spark model; it has python_function, sklearn."
    )


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--spark-model-uri", "model"), ("--rows", "0"), ("--master", "local[-1]")],
)
def test_bad_flag_exits_2(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        score_on_spark.main([flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err
