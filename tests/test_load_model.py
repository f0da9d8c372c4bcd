"""load_model.py: every model URI form, the run's held-out rows, and one-sentence errors."""

import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import (
    REPO_ROOT,
    free_port,
    new_store,
    require,
    run_script,
    sqlite_uri,
    using_store,
)
from test_readme import README, code_blocks

import demo
import load_model
import plumbing
import train_iris_sweep
import train_wine_elasticnet


@pytest.fixture(scope="module")
def models(tmp_path_factory, empty_store_template):
    """One store for the module: two demo models (registered as versions 1 and 2 of
    breast_cancer_rf, 1 with the alias champion), a small iris sweep, a wine model,
    and two hand-logged models: one without held-out rows, one whose held-out rows
    hold only whole numbers."""
    folder, uri = new_store(tmp_path_factory, empty_store_template, "load_model")
    with using_store(uri, folder):
        older = demo.main(["--n-estimators", "3", "--max-depth", "2"])
        newest = demo.main(["--n-estimators", "4", "--test-size", "0.3", "--seed", "7"])
        sweep = train_iris_sweep.main(["--grid", "3:2,5:3"])
        wine = train_wine_elasticnet.main(["--alpha", "0.1"])
        mlflow.register_model(older["model_uri"], "breast_cancer_rf")
        mlflow.register_model(newest["model_uri"], "breast_cancer_rf")
        mlflow.MlflowClient().set_registered_model_alias("breast_cancer_rf", "champion", "1")
        no_rows, whole_numbers = log_hand_made_models()
    return {
        "uri": uri,
        "folder": folder,
        "older": older,
        "newest": newest,
        "sweep": sweep,
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
                pip_requirements=plumbing.REQUIREMENTS,
            )
            uris.append(info.model_uri)
    return uris


@pytest.fixture
def store(models):
    with using_store(models["uri"], models["folder"]):
        yield models


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
    expected = mlflow.sklearn.load_model(f"runs:/{run_id}/model").predict(
        recorded.drop(columns=truth)
    )
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


def test_default_is_the_newest_demo_model(store, capsys):
    result = load_model.main([])
    out = capsys.readouterr().out
    newest = store["newest"]
    assert result["info"].model_uri == newest["model_uri"]
    recorded = assert_predictions_match_the_run(result, out, newest["run_id"], "diagnosis")
    assert len(recorded) == 171  # test_size 0.3 of 569 patients
    assert set(recorded["diagnosis"]) == {"malignant", "benign"}
    assert "mlflow.pyfunc.load_model  -> PyFuncModel with a predict method" in out
    assert "mlflow.sklearn.load_model -> RandomForestClassifier(" in out
    assert "n_estimators=4" in out
    assert "5 of the 171 held-out rows ('true' is their diagnosis):" in out
    assert "predicted      true  probability" in out
    # Counted over every held-out row: the run's own accuracy.
    correct = round(newest["metrics"]["accuracy"] * 171)
    assert f"{correct} of 171 held-out rows predicted correctly." in out
    probabilities = result["table"]["probability"]
    assert ((probabilities >= 0.5) & (probabilities <= 1)).all()
    assert "then open http://127.0.0.1:5000/#/experiments/" in out


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
    assert result["info"].model_id == model_id
    assert_predictions_match_the_run(result, out, older["run_id"], "diagnosis", rows=7)
    assert out.startswith(f"Model {uri}\n  logged model {model_id} ('model', flavors ")
    assert f"  logged by run {older['run_id']} (random_forest_breast_cancer)\n" in out
    assert "  registered model 'breast_cancer_rf' version 1\n" in out
    assert "7 of the 143 held-out rows" in out


def test_registered_version_2_is_the_newer_model(store, capsys):
    result = load_model.main(["--model-uri", "models:/breast_cancer_rf/2"])
    assert result["info"].model_uri == store["newest"]["model_uri"]
    assert "registered model 'breast_cancer_rf' version 2" in capsys.readouterr().out


@pytest.mark.parametrize("uri", ["models:/iris_classifier@champion", "models:/iris_classifier/1"])
def test_iris_sweep_models_predict_species(store, capsys, uri):
    result = load_model.main(["--model-uri", uri])
    out = capsys.readouterr().out
    version = store["sweep"]["champion"][1] if uri.endswith("@champion") else "1"
    run = next(run for run in store["sweep"]["runs"] if run["version"] == version)
    recorded = assert_predictions_match_the_run(result, out, run["run_id"], "species")
    assert set(recorded["species"]) == {"setosa", "versicolor", "virginica"}
    assert f"registered model 'iris_classifier' version {version}" in out
    correct = round(run["metrics"]["accuracy"] * 45)
    assert f"{correct} of 45 held-out rows predicted correctly." in out


def test_a_bare_array_is_refused_and_a_dataframe_is_the_fix(store):
    """The README's "a bare array" example, run as printed there: MLflow's own error,
    the line the README shows, then the fix and the prediction in its comment."""
    readme = README.read_text().split("### Predicting from your own code", 1)[1]
    code, shown_error, fix = re.search(
        r"```python\n(.*?)```\s*```text\n(.*?)\n```.*?```python\n(.*?)```", readme, re.S
    ).groups()
    names = {}
    with pytest.raises(mlflow.exceptions.MlflowException) as error:
        exec(code, names)
    assert f"mlflow.exceptions.MlflowException: {error.value}" == shown_error
    call, _, shown_prediction = fix.strip().partition("  # ")
    assert str(list(eval(call, names))) == shown_prediction


def test_wine_model_shows_errors_and_their_mean(store, capsys):
    wine = store["wine"]
    result = load_model.main(["--model-uri", wine["model_uri"], "--rows", "3"])
    out = capsys.readouterr().out
    recorded = assert_predictions_match_the_run(result, out, wine["run_id"], "quality", rows=3)
    assert len(recorded) == 400
    assert "ElasticNet(alpha=0.1)" in out
    assert "predicted  true  error" in out
    assert "probability" not in out
    errors = result["table"]["predicted"] - recorded["quality"]
    np.testing.assert_allclose(result["table"]["error"], errors)
    # The mean absolute error over all held-out rows is the run's own mae metric.
    assert f"Mean absolute error on the 400 held-out rows: {wine['metrics']['mae']:.3f}" in out


def test_more_rows_than_held_out_shows_them_all(store, capsys):
    load_model.main(["--model-uri", "models:/iris_classifier/1", "--rows", "1000"])
    out = capsys.readouterr().out
    assert "45 of the 45 held-out rows ('true' is their species):" in out
    rows_and_summary = printed_rows(out, 46)
    assert all(len(words) == 3 for words in rows_and_summary[:45])
    assert rows_and_summary[45][1:] == ["of", "45", "held-out", "rows", "predicted", "correctly."]


def test_whole_numbers_get_the_signature_types(store, capsys):
    """JSON gives back 1.0 as 1; the model's signature wants double: it still predicts."""
    result = load_model.main(["--model-uri", store["whole_numbers"]])
    out = capsys.readouterr().out
    np.testing.assert_allclose(result["table"]["predicted"], [5.0, 8.0])
    assert list(result["table"]["true"]) == [5.0, 8.0]
    assert "Mean absolute error on the 2 held-out rows: 0.000" in out


def test_model_without_held_out_rows_is_one_sentence(store):
    run_id = mlflow.models.get_model_info(store["no_rows"]).run_id
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", store["no_rows"]])
    assert exit_info.value.code == (
        f"The run {run_id} that logged this model recorded no held-out rows "
        "(held_out_rows.json), so there is nothing to compare its predictions with."
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "models:/m-0123456789abcdef",
            "Logged model with ID 'm-0123456789abcdef' not found "
            "(python compare_runs.py lists the runs and their models).",
        ),
        ("runs:/0123456789abcdef/model", "Run with id=0123456789abcdef not found."),
        ("runs:/{run_id}/classifier", "(this run's models: runs:/{run_id}/model)."),
        (
            "models:/breast_cancer_rf/9",
            "('breast_cancer_rf' has versions 1, 2 and aliases @champion).",
        ),
        ("models:/breast_cancer_rf@best", "Registered model alias best not found ("),
        (
            "models:/no_such_model/1",
            "(registered models: breast_cancer_rf, iris_classifier).",
        ),
        ("models:/no_such_model@champion", "Registered Model with name=no_such_model not found ("),
    ],
)
def test_unknown_model_is_one_sentence(store, uri, message):
    run_id = store["older"]["run_id"]
    uri = uri.format(run_id=run_id)
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", uri])
    text = exit_info.value.code
    assert isinstance(text, str) and "\n" not in text
    assert text.startswith(f"Cannot find {uri}: ")
    assert message.format(run_id=run_id) in text


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


@pytest.mark.parametrize("uri", ["m-123", "models:/", "file:///tmp/model", "runs:/"])
def test_bad_uri_form_exits_2(tracking_store, capsys, uri):
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", uri])
    assert exit_info.value.code == 2
    assert "expected models:/<model_id>, runs:/<run_id>/model" in capsys.readouterr().err


@pytest.mark.parametrize("rows", ["0", "-3", "five"])
def test_bad_rows_exits_2(tracking_store, capsys, rows):
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--rows", rows])
    assert exit_info.value.code == 2
    assert "--rows" in capsys.readouterr().err


def test_empty_store_says_run_demo_first(tracking_store):
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    assert exit_info.value.code == load_model.NO_MODEL_YET
    assert "run `python demo.py` first" in load_model.NO_MODEL_YET


def test_no_local_store_says_run_demo_first(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(plumbing.store, "REPO_ROOT", tmp_path)  # a clone with no mlflow.db
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    assert exit_info.value.code == load_model.NO_MODEL_YET
    assert not (tmp_path / "mlflow.db").exists()


def test_a_tracking_uri_of_no_known_form_is_one_sentence(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://bar")
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    assert exit_info.value.code.startswith("MLFLOW_TRACKING_URI=foo://bar is not a tracking store")


def test_unreachable_server_is_one_sentence(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(SystemExit) as exit_info:
        load_model.main([])
    text = exit_info.value.code
    assert text.startswith(f"Could not use the MLflow tracking store at {uri}: nothing answers")
    assert "\n" not in text


def readme_clean_up_lines():
    """The README's clean-up commands, but the experiment's deletion: the run's alone."""
    section = README.read_text().split("## Clean up", 1)[1]
    [commands] = code_blocks("bash", section)[:1]
    return [line for line in commands if "experiments delete" not in line]


def test_readme_clean_up_removes_a_run_with_its_models(tracking_store, tmp_path):
    """The README's clean-up deletes the newest demo run and its models; after `mlflow gc`
    neither their rows nor their files remain, load_model.py's default is the older model,
    and the removed one is refused in one sentence."""
    older = demo.main(["--n-estimators", "3", "--max-depth", "2"])
    newest = demo.main(["--n-estimators", "4", "--max-depth", "2"])
    client = mlflow.MlflowClient(tracking_store)
    older_id, newest_id = (run["model_uri"].removeprefix("models:/") for run in (older, newest))
    model_folder = Path(
        client.get_logged_model(newest_id).artifact_location.removeprefix("file://")
    )
    assert model_folder.is_dir()
    programs = {"python": [sys.executable], "mlflow": [sys.executable, "-m", "mlflow"]}
    for line in readme_clean_up_lines():
        program, _, rest = line.replace("<RUN_ID>", newest["run_id"]).partition(" ")
        line = f"{shlex.join(programs[program])} {rest}"
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\n{result.stderr}"
    experiment_id = client.get_run(older["run_id"]).info.experiment_id
    assert [m.model_id for m in client.search_logged_models([experiment_id])] == [older_id]
    assert not model_folder.exists()
    assert load_model.main([])["info"].model_uri == older["model_uri"]
    with pytest.raises(SystemExit) as exit_info:
        load_model.main(["--model-uri", newest["model_uri"]])
    assert exit_info.value.code.startswith(f"Cannot find {newest['model_uri']}: ")


def test_a_store_owned_by_another_user_is_read_and_never_written(tmp_path, empty_store_template):
    """A store another user made (with ``sudo python demo.py``, say): compare_runs.py reads
    it; demo.py refuses to log into it, and load_model.py stops when MLflow, loading the
    model, writes a small file (``registered_model_meta``) into the model's folder; each in
    one sentence, and the store is left as it was. Here root plays the other user's
    neighbour: ``setpriv`` drops root's right to override file permissions."""
    setpriv = shutil.which("setpriv")
    require(
        os.name == "posix" and os.geteuid() == 0 and setpriv,
        "giving the store to another user needs root and setpriv",
    )
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    shutil.copyfile(empty_store_template, theirs / "mlflow.db")
    uri = sqlite_uri(theirs / "mlflow.db")
    with using_store(uri, theirs):
        logged = demo.main(["--n-estimators", "3"])
    nobody = pwd.getpwnam("nobody")
    for path in [theirs, *theirs.rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    before = sorted((p.relative_to(theirs), p.stat().st_mtime_ns) for p in theirs.rglob("*"))
    no_override = "-dac_override,-dac_read_search,-fowner"
    as_a_neighbour = [setpriv, f"--inh-caps={no_override}", f"--bounding-set={no_override}"]

    def run(script, *args):
        return subprocess.run(
            [*as_a_neighbour, sys.executable, str(REPO_ROOT / script), *args],
            cwd=theirs,
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            capture_output=True,
            text=True,
            timeout=300,
        )

    compared = run("compare_runs.py", "--experiment", "demo-mlflow-artifacts")
    assert compared.returncode == 0, compared.stderr
    assert logged["run_id"] in compared.stdout
    refused = run("demo.py")
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        f"Could not use the MLflow store {theirs / 'mlflow.db'} (it is read-only for you): make "
        f"{theirs / 'mlflow.db'} and its folder writable for you, or use another store.",
    )
    loaded = run("load_model.py")
    assert loaded.returncode == 1
    assert "Traceback" not in loaded.stderr
    model_folder = theirs / "mlruns" / "1" / "models" / logged["model_uri"].split("/")[-1]
    assert loaded.stderr.strip().splitlines()[-1] == (
        f"Stopped, you may not write {model_folder / 'artifacts' / 'registered_model_meta'} "
        "(Permission denied); make the store writable for you (is it another user's, or on a "
        "read-only disk?)."
    )
    assert sorted((p.relative_to(theirs), p.stat().st_mtime_ns) for p in theirs.rglob("*")) == (
        before
    )


def test_loading_draws_no_progress_bars(tracking_store):
    """MLflow draws a bar per model download, even for a few kilobytes read from this disk;
    plumbing turns them off (MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, a setting of yours wins)."""
    demo.main(["--n-estimators", "3", "--max-depth", "2"])
    result = run_script("load_model.py")
    assert result.returncode == 0, result.stderr
    assert "Downloading artifacts" not in result.stderr
    shown = run_script("load_model.py", env={"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "true"})
    assert "Downloading artifacts" in shown.stderr
