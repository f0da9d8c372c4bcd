"""load_model.py: every model URI form, held-out rows, and one-sentence errors."""

import mlflow
import numpy as np
import pytest
from conftest import SHARED_WINE_CSV, new_store, require, run_script, using_store

import demo
import load_model
import workshop_store


@pytest.fixture(scope="module")
def models(tmp_path_factory, empty_store_template):
    """One store for the whole module: two demo models (one registered twice, with an
    alias), a small iris sweep, and a wine model when the real wine data is here."""
    folder, uri = new_store(tmp_path_factory, empty_store_template, "load_model")
    with using_store(uri, folder):
        older = demo.main(["--n-estimators", "3", "--max-depth", "2"])
        newest = demo.main(["--n-estimators", "4", "--test-size", "0.3", "--seed", "7"])
        workshop_store.connect()
        mlflow.register_model(older["model_uri"], "breast_cancer_rf")
        mlflow.register_model(newest["model_uri"], "breast_cancer_rf")
        mlflow.MlflowClient().set_registered_model_alias("breast_cancer_rf", "champion", "1")

        import train_iris_sweep

        sweep = train_iris_sweep.main(["--grid", "3:2,5:3"])
        wine = None
        if SHARED_WINE_CSV.is_file():
            import train_wine_elasticnet

            wine = train_wine_elasticnet.main(["--data", str(SHARED_WINE_CSV), "--alpha", "0.1"])
    return {
        "uri": uri,
        "folder": folder,
        "older": older,
        "newest": newest,
        "sweep": sweep,
        "wine": wine,
    }


@pytest.fixture
def store(models):
    with using_store(models["uri"], models["folder"]):
        yield models


def assert_own_predictions(result, features):
    """The printed predictions are the model's own, on exactly these rows."""
    expected = mlflow.sklearn.load_model(result["model_uri"]).predict(features)
    np.testing.assert_allclose(result["predictions"], expected)
    assert result["rows"] == list(features.index)


def test_default_is_the_newest_demo_model(store, capsys):
    result = load_model.main([])
    out = capsys.readouterr().out
    newest = store["newest"]
    assert result["model_uri"] == newest["model_uri"]
    assert result["run_id"] == newest["run_id"]
    assert result["dataset"] == "breast cancer"
    # The newest run split with test_size 0.3 and seed 7: those held-out rows.
    _, _, X_test, _, y_test = demo.load_data(0.3, 7)
    assert_own_predictions(result, X_test.head(5))
    assert list(result["true"]) == list(y_test.head(5))
    assert "held-out rows: the split its run recorded, test_size=0.3, seed=7, stratify=True" in out
    assert "mlflow.pyfunc.load_model  -> PyFuncModel" in out
    assert "mlflow.sklearn.load_model -> RandomForestClassifier(" in out
    assert "n_estimators=4" in out
    names = {0: "malignant", 1: "benign"}
    for row, predicted, true in zip(
        result["rows"], result["predictions"], result["true"], strict=True
    ):
        line = next(line for line in out.splitlines() if line.split()[:1] == [str(row)])
        assert line.split()[1:3] == [names[predicted], names[true]]
    assert "of 5 held-out rows predicted correctly." in out


@pytest.mark.parametrize(
    "form",
    [
        "models:/{model_id}",
        "runs:/{run_id}/model",
        "models:/breast_cancer_rf/1",
        "models:/breast_cancer_rf@champion",
    ],
)
def test_every_uri_form_loads_the_same_model(store, capsys, form):
    older = store["older"]
    model_id = older["model_uri"].removeprefix("models:/")
    uri = form.format(model_id=model_id, run_id=older["run_id"])
    result = load_model.main(["--model-uri", uri, "--rows", "7"])
    out = capsys.readouterr().out
    assert result["model_uri"] == uri
    assert result["model_id"] == model_id
    assert result["run_id"] == older["run_id"]
    _, _, X_test, _, _ = demo.load_data(0.25, 42)
    assert_own_predictions(result, X_test.head(7))
    assert f"logged model {model_id}" in out
    if "breast_cancer_rf" in uri:
        assert "registered model 'breast_cancer_rf' version 1" in out


def test_registered_version_2_is_the_newer_model(store):
    result = load_model.main(["--model-uri", "models:/breast_cancer_rf/2"])
    assert result["model_id"] == store["newest"]["model_uri"].removeprefix("models:/")


@pytest.mark.parametrize("uri", ["models:/iris_classifier@champion", "models:/iris_classifier/1"])
def test_iris_sweep_models(store, capsys, uri):
    """Issue 3: the sweep's registered model, by alias and by version, unchanged script."""
    import train_iris_sweep

    result = load_model.main(["--model-uri", uri])
    out = capsys.readouterr().out
    assert result["dataset"] == "iris"
    # The sweep keeps its split on the parent run; the held-out rows are its test rows.
    data, _, X_test, _, y_test = train_iris_sweep.load_data()
    assert_own_predictions(result, X_test.head(5))
    assert list(result["true"]) == list(y_test.head(5))
    assert "test_size=0.3, seed=42, stratify=True" in out
    species = set(data.target_names)
    table = out[out.index("Predictions on") :].splitlines()[2:7]
    assert all(set(line.split()[1:3]) <= species for line in table)
    if uri.endswith("@champion"):
        champion = store["sweep"]["champion_version"]
        assert f"registered model 'iris_classifier' version {champion}" in out


def test_wine_model(store, capsys):
    require(store["wine"] is not None, f"the real wine data is not at {SHARED_WINE_CSV}")
    from sklearn.model_selection import train_test_split

    import train_wine_elasticnet

    result = load_model.main(["--model-uri", f"runs:/{store['wine']['run_id']}/model"])
    out = capsys.readouterr().out
    assert result["dataset"] == "wine"
    wine = train_wine_elasticnet.load_wine_data(SHARED_WINE_CSV)
    _, X_test, _, y_test = train_test_split(
        wine[train_wine_elasticnet.FEATURES], wine["quality"], test_size=0.25, random_state=42
    )
    assert_own_predictions(result, X_test.head(5))
    np.testing.assert_allclose(result["true"], y_test.head(5))
    assert "Mean absolute error on these rows:" in out
    assert "ElasticNet(alpha=0.1)" in out


def test_wine_data_unavailable_is_one_sentence(store, tmp_path):
    require(store["wine"] is not None, f"the real wine data is not at {SHARED_WINE_CSV}")
    missing = tmp_path / "winequality-red.csv"
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", store["wine"]["model_uri"], "--data", str(missing)])
    assert exit_info.value.code == (
        f"There is no file {missing}; pass a copy of winequality-red.csv with --data."
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/m-0123456789abcdef", "Logged model with ID 'm-0123456789abcdef' not found"),
        ("runs:/0123456789abcdef/model", "Run with id=0123456789abcdef not found"),
        ("runs:/{run_id}/classifier", "(this run's models: runs:/{run_id}/model)"),
        ("models:/breast_cancer_rf/9", "has versions 1, 2 and aliases @champion"),
        ("models:/breast_cancer_rf@best", "Registered model alias best not found"),
        ("models:/no_such_model/1", "(registered models: breast_cancer_rf, iris_classifier)"),
        ("models:/no_such_model@champion", "Registered Model with name=no_such_model not found"),
    ],
)
def test_unknown_model_is_one_sentence(store, uri, message):
    uri = uri.format(run_id=store["older"]["run_id"])
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", uri])
    text = exit_info.value.code
    assert isinstance(text, str) and "\n" not in text
    assert text.startswith(f"Cannot find {uri}: ")
    assert message.format(run_id=store["older"]["run_id"]) in text


def test_unknown_alias_from_the_command_line(store):
    result = run_script(
        "load_model.py",
        "--model-uri",
        "models:/iris_classifier@nope",
        env={"MLFLOW_TRACKING_URI": store["uri"]},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Cannot find models:/iris_classifier@nope: Registered model alias nope not found "
        "('iris_classifier' has versions 1, 2 and aliases @champion)."
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("uri", ["m-123", "models:/", "file:///tmp/model", "runs:/"])
def test_bad_uri_form_exits_2(tracking_store, capsys, uri):
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", uri])
    assert exit_info.value.code == 2
    assert "expected models:/<model_id>, runs:/<run_id>/model" in capsys.readouterr().err


def test_empty_store_says_run_demo_first(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    assert exit_info.value.code == load_model.NO_MODEL_YET
    assert "run `python demo.py` first" in load_model.NO_MODEL_YET


def test_no_local_store_says_run_demo_first(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(workshop_store, "REPO_ROOT", tmp_path)  # a clone with no mlflow.db
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    assert exit_info.value.code == load_model.NO_MODEL_YET
    assert not (tmp_path / "mlflow.db").exists()


def test_data_is_told_apart_by_signature():
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer, load_iris

    named = infer_signature(load_breast_cancer(as_frame=True).data, np.zeros(3))
    assert load_model.identify_data(named)[0] == "breast cancer"
    # A model logged from a bare array has only a width: 4 columns are the iris data.
    unnamed = infer_signature(load_iris().data, np.zeros(3))
    assert load_model.identify_data(unnamed) == ("iris", None)
    assert load_model.identify_data(infer_signature(np.zeros((3, 7)), np.zeros(3))) == (None, None)


def test_split_settings_from_params():
    assert load_model.split_settings({"test_size": "0.25", "seed": "42", "stratify": "True"}, True)
    assert load_model.split_settings(
        {"test_samples": "45", "split_seed": "1", "seed": "9"}, True
    ) == {
        "test_size": 45,
        "seed": 1,
        "stratify": True,
    }
    assert load_model.split_settings({"test_size": "0.2", "seed": "3"}, False) == {
        "test_size": 0.2,
        "seed": 3,
        "stratify": False,
    }
    assert load_model.split_settings({"alpha": "0.5"}, False) is None
