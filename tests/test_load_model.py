"""load_model.py: every model URI form, the run's held-out rows beside the predictions, and
one sentence naming what exists when a URI names nothing."""

import contextlib
import io
import shutil
from importlib.metadata import version

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import copy_lesson, load_lesson, run_script, sqlite_uri


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template):
    """One store for the module: two demo models (versions 1 and 2 of breast_cancer_rf, the
    alias champion on 1), a PENDING model newer than both (an upload that was stopped), a
    wine model, and two logged by hand: one without held-out rows, one whose held-out rows
    are whole numbers."""
    folder = tmp_path_factory.mktemp("load_model")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    uri = sqlite_uri(folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.chdir(folder)
        demo = load_lesson("demo.py")
        older = demo.main(["--n-estimators", "3", "--max-depth", "2"])
        newest = demo.main(["--n-estimators", "4", "--test-size", "0.3", "--seed", "7"])
        wine = load_lesson("train_wine_elasticnet.py").main(["--alpha", "0.1"])
        client = mlflow.MlflowClient(uri)
        client.create_registered_model("breast_cancer_rf")
        for result in (older, newest):
            client.create_model_version("breast_cancer_rf", result["model_uri"], result["run_id"])
        client.set_registered_model_alias("breast_cancer_rf", "champion", "1")
        # What a Ctrl+C while demo.py logs its model leaves: a FAILED run, a PENDING model.
        demo_experiment = client.get_run(newest["run_id"]).info.experiment_id
        stopped = client.create_run(demo_experiment, run_name="random_forest_breast_cancer")
        client.create_logged_model(demo_experiment, "model", stopped.info.run_id)
        client.set_terminated(stopped.info.run_id, "FAILED")
        no_rows, whole_numbers = log_hand_made_models()
    return {
        "uri": uri,
        "older": older,
        "newest": newest,
        "wine": wine,
        "no_rows": no_rows,
        "whole_numbers": whole_numbers,
    }


def log_hand_made_models():
    """A linear model without held-out rows, and one whose held-out rows are whole numbers
    (which JSON gives back as integers, while the signature says double)."""
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"width": [1.5, 2.5, 3.5, 4.5], "height": [2.0, 1.0, 4.0, 3.0]})
    y = X["width"] * 2 + X["height"]
    model = LinearRegression().fit(X, y)
    mlflow.set_experiment("hand-made")
    uris = []
    for held_out in [None, pd.DataFrame({"width": [1.0, 2.0], "height": [3.0, 4.0]})]:
        with mlflow.start_run():
            if held_out is not None:
                mlflow.log_table(held_out.assign(area=[5.0, 8.0]), "held_out_rows.json")
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X, y),
                serialization_format="skops",
                pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn")],
            )
            uris.append(info.model_uri)
    return uris


@pytest.fixture
def load(store, monkeypatch):
    """load_model.py, imported as `python load_model.py` would be with the module's store."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    return load_lesson("load_model.py")


def recorded_rows(run_id):
    """held_out_rows.json as the run stored it, read without load_model.py's help."""
    table = mlflow.artifacts.load_dict(f"runs:/{run_id}/held_out_rows.json")
    return pd.DataFrame(table["data"], columns=table["columns"])


def printed_rows(out, count):
    """The rows of the printed predictions table, split into words."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "held-out rows ('true' is their" in line)
    return [line.split() for line in lines[start + 2 : start + 2 + count]]


def assert_predictions_match_the_run(result, out, run_id, truth, rows=5):
    """Predictions are the scikit-learn model's own on held_out_rows.json, beside its truth."""
    recorded = recorded_rows(run_id)
    model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    expected = model.predict(recorded.drop(columns=truth))
    assert result["truth_column"] == truth
    assert result["info"].run_id == run_id
    assert list(result["table"]["true"]) == list(recorded[truth])
    if expected.dtype.kind in "fc":
        np.testing.assert_allclose(result["table"]["predicted"], expected)
    else:
        assert list(result["table"]["predicted"]) == list(expected)
    shown = zip(printed_rows(out, rows), expected[:rows], recorded[truth][:rows], strict=True)
    for words, predicted, true in shown:
        if isinstance(predicted, str):
            assert words[:2] == [predicted, true]
        else:
            assert [float(words[0]), float(words[1])] == pytest.approx([predicted, true], abs=5e-4)
    return recorded


def progress_bars(err):
    """How many progress bars MLflow drew on stderr; fails on any other line there."""
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("Downloading artifacts: ") for line in lines), err
    return sum(line.startswith("Downloading artifacts:   0%") for line in lines)


def test_default_is_the_newest_ready_demo_model(store, load, capsys):
    result = load.main([])
    captured = capsys.readouterr()
    newest = store["newest"]
    assert result["info"].model_uri == newest["model_uri"]  # not the newer PENDING one
    recorded = assert_predictions_match_the_run(result, captured.out, newest["run_id"], "diagnosis")
    assert len(recorded) == 171  # test_size 0.3 of 569 patients
    experiment_id = mlflow.get_run(newest["run_id"]).info.experiment_id
    correct = round(newest["metrics"]["accuracy"] * 171)  # over every row: the run's accuracy
    model_id = newest["model_uri"].removeprefix("models:/")
    lines = captured.out.splitlines()
    assert lines[:8] == [
        f"Model {newest['model_uri']}",
        f"  logged model {model_id} ('model', flavors python_function, sklearn)",
        f"  logged by run {newest['run_id']} (random_forest_breast_cancer)",
        "  registered model 'breast_cancer_rf' version 2",
        "",
        "mlflow.pyfunc.load_model  -> PyFuncModel with a predict method",
        "mlflow.sklearn.load_model -> RandomForestClassifier(max_depth=8, n_estimators=4, "
        "random_state=7)",
        "",
    ]
    assert lines[8:10] == [
        "5 of the 171 held-out rows ('true' is their diagnosis):",
        "predicted      true  probability",
    ]
    assert lines[-2:] == [
        f"{correct} of 171 held-out rows predicted correctly.",
        f"See it:    http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{newest['run_id']}"
        "?workflowType=machine_learning",
    ]
    probabilities = result["table"]["probability"]
    assert ((probabilities >= 0.5) & (probabilities <= 1)).all()
    # MLflow draws a progress bar on stderr for each artifact it copies: here the held-out
    # rows (README, "When things go wrong"); nothing else is printed there.
    assert progress_bars(captured.err) == 1


@pytest.mark.parametrize(
    "form",
    [
        "models:/{model_id}",
        "runs:/{run_id}/model",
        "models:/breast_cancer_rf/1",
        "models:/breast_cancer_rf@champion",
    ],
)
def test_every_uri_form_loads_the_same_model(store, load, capsys, form):
    older = store["older"]
    model_id = older["model_uri"].removeprefix("models:/")
    uri = form.format(model_id=model_id, run_id=older["run_id"])
    result = load.main(["--model-uri", uri, "--rows", "7"])
    captured = capsys.readouterr()
    assert result["info"].model_id == model_id
    assert_predictions_match_the_run(result, captured.out, older["run_id"], "diagnosis", rows=7)
    assert captured.out.startswith(
        f"Model {uri}\n"
        f"  logged model {model_id} ('model', flavors python_function, sklearn)\n"
        f"  logged by run {older['run_id']} (random_forest_breast_cancer)\n"
        "  registered model 'breast_cancer_rf' version 1\n"
    )
    assert "7 of the 143 held-out rows" in captured.out
    # Found through a run or the registry, the model may be copied to a temporary folder
    # first: more progress bars on stderr than the held-out rows' one, and nothing else.
    assert progress_bars(captured.err) >= 1


def test_registered_version_2_is_the_newer_model(store, load, capsys):
    result = load.main(["--model-uri", "models:/breast_cancer_rf/2"])
    assert result["info"].model_uri == store["newest"]["model_uri"]
    assert "  registered model 'breast_cancer_rf' version 2\n" in capsys.readouterr().out


def test_a_wine_model_shows_its_errors_and_their_mean(store, load, capsys):
    wine = store["wine"]
    result = load.main(["--model-uri", wine["model_uri"], "--rows", "3"])
    out = capsys.readouterr().out
    recorded = assert_predictions_match_the_run(result, out, wine["run_id"], "quality", rows=3)
    assert len(recorded) == 400
    assert "mlflow.sklearn.load_model -> Pipeline(steps=[('standardscaler'" in out
    assert "predicted  true  error" in out
    assert "probability" not in out
    np.testing.assert_allclose(
        result["table"]["error"], result["table"]["predicted"] - recorded["quality"]
    )
    # The mean absolute error over all held-out rows is the run's own mae metric.
    assert f"Mean absolute error on the 400 held-out rows: {wine['metrics']['mae']:.3f}" in out


def test_more_rows_than_held_out_shows_them_all(store, load, capsys):
    load.main(["--model-uri", store["whole_numbers"], "--rows", "1000"])
    out = capsys.readouterr().out
    assert "2 of the 2 held-out rows ('true' is their area):" in out


def test_whole_numbers_get_the_signature_types(store, load, capsys):
    """JSON gives back 1.0 as 1; the model's signature wants double: it still predicts."""
    result = load.main(["--model-uri", store["whole_numbers"]])
    out = capsys.readouterr().out
    np.testing.assert_allclose(result["table"]["predicted"], [5.0, 8.0])
    assert list(result["table"]["true"]) == [5.0, 8.0]
    assert "Mean absolute error on the 2 held-out rows: 0.000" in out


def test_a_model_without_held_out_rows_is_one_sentence(store, load):
    run_id = mlflow.models.get_model_info(store["no_rows"]).run_id
    with pytest.raises(SystemExit) as stopped:
        load.main(["--model-uri", store["no_rows"]])
    assert stopped.value.code == (
        f"The run {run_id} that logged this model recorded no held-out rows "
        "(held_out_rows.json), so there is nothing to compare its predictions with."
    )


def test_a_run_deleted_in_the_ui_is_left_out_and_its_model_is_one_sentence(store, load, capsys):
    """Delete the newest demo run (what the UI's Delete does): the default is then the older
    model, and the deleted run's own model is one sentence naming the command that restores
    it. MLflow's load_table searches only runs that are not deleted."""
    client = mlflow.MlflowClient(store["uri"])
    newest = store["newest"]
    client.delete_run(newest["run_id"])
    try:
        result = load.main([])
        with pytest.raises(SystemExit) as stopped:
            load.main(["--model-uri", newest["model_uri"]])
    finally:
        client.restore_run(newest["run_id"])
    assert result["info"].model_uri == store["older"]["model_uri"]
    assert stopped.value.code == (
        f"The run {newest['run_id']} that logged {newest['model_uri']} was deleted: "
        f"`mlflow runs restore --run-id {newest['run_id']}` brings it back."
    )
    assert "WARNING" not in capsys.readouterr().err


def test_an_experiment_deleted_in_the_ui_is_one_sentence(store, load):
    client = mlflow.MlflowClient(store["uri"])
    experiment_id = client.get_run(store["newest"]["run_id"]).info.experiment_id
    client.delete_experiment(experiment_id)
    try:
        with pytest.raises(SystemExit) as stopped:
            load.main([])
    finally:
        client.restore_experiment(experiment_id)
    assert stopped.value.code == (
        "The experiment 'demo-mlflow-artifacts' was deleted: "
        f"`mlflow experiments restore --experiment-id {experiment_id}` brings it back."
    )


COMPARE_RUNS = "(python compare_runs.py lists the runs and their models)."


@pytest.mark.parametrize(
    ("uri", "sentence"),
    [
        (
            "models:/breast_cancer_rf/9",
            "Model Version (name=breast_cancer_rf, version=9) not found "
            "('breast_cancer_rf' has versions 1, 2 and aliases @champion).",
        ),
        (
            "models:/breast_cancer_rf@best",
            "Registered model alias best not found "
            "('breast_cancer_rf' has versions 1, 2 and aliases @champion).",
        ),
        (
            "models:/breast_cancer@champion",
            "Registered Model with name=breast_cancer not found "
            "(registered models: breast_cancer_rf).",
        ),
        (
            "models:/no_such_model/1",
            "Registered Model with name=no_such_model not found "
            "(registered models: breast_cancer_rf).",
        ),
        (
            "models:/m-0123456789abcdef",
            f"Logged model with ID 'm-0123456789abcdef' not found {COMPARE_RUNS}",
        ),
        ("runs:/0123456789abcdef/model", f"Run with id=0123456789abcdef not found {COMPARE_RUNS}"),
    ],
)
def test_an_unknown_model_is_one_sentence_naming_what_exists(load, uri, sentence):
    with pytest.raises(SystemExit) as stopped:
        load.main(["--model-uri", uri])
    assert stopped.value.code == f"Cannot find {uri}: {sentence}"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model-uri", "m-123"], "--model-uri must be models:/<model_id>, runs:/<run_id>/model"),
        (["--model-uri", "file:///tmp/model"], "--model-uri must be models:/<model_id>, "),
        (["--rows", "0"], "--rows must be at least 1"),
        (["--rows", "five"], "argument --rows: invalid int value: 'five'"),
    ],
)
def test_a_bad_flag_is_one_line_exit_2(load, capsys, flags, message):
    with pytest.raises(SystemExit) as stopped:
        load.main(flags)
    assert stopped.value.code == 2
    assert f": error: {message}" in capsys.readouterr().err.strip().splitlines()[-1]


def test_an_empty_store_says_run_demo_first(tracking_store):
    with pytest.raises(SystemExit) as stopped:
        load_lesson("load_model.py").main([])
    assert stopped.value.code == (
        "There is no demo.py model in the tracking store yet: run `python demo.py` first."
    )


def test_copied_alone_without_a_store_it_says_so_and_creates_none(tmp_path, monkeypatch):
    lesson = copy_lesson("load_model.py", tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    with pytest.raises(SystemExit) as stopped:
        load_lesson(lesson).main([])
    assert stopped.value.code == (
        "There is no demo.py model in the tracking store yet: run `python demo.py` first."
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["load_model.py"]


def test_an_unknown_alias_as_a_participant_sees_it(store, tmp_path):
    """From a copy in an empty folder: one line on stderr, exit code 1, nothing on stdout."""
    lesson = copy_lesson("load_model.py", tmp_path)
    uri = "models:/breast_cancer_rf@best"
    done = run_script(
        str(lesson), "--model-uri", uri, cwd=tmp_path, env={"MLFLOW_TRACKING_URI": store["uri"]}
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"Cannot find {uri}: Registered model alias best not found "
        "('breast_cancer_rf' has versions 1, 2 and aliases @champion).\n"
    )
