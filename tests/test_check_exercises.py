"""check_exercises.py: every exercise's hints and its done state, read from a real store.

The states are made as a participant makes them: the lessons run in-process, MlflowClient
calls (tags, registrations, aliases) and a few lines of real code on the real data where an
exercise asks for code of one's own. One store serves the module and is advanced stage by
stage: each test below builds on the ones before it, in the order of the file, as one
participant works through the exercises.
"""

import shutil

import mlflow
import pandas as pd
import pytest
from conftest import WINE_CSV, copy_lesson, free_port, load_lesson, run_script, sqlite_uri
from mlflow.exceptions import MlflowException
from sklearn.metrics import balanced_accuracy_score, root_mean_squared_error
from sklearn.model_selection import train_test_split

NO_DEFAULT_RUN = (
    "no run with the default settings (alpha 0.5, l1_ratio 0.5) to beat: "
    "python train_wine_elasticnet.py"
)
LOCAL_STORE_HINT = "MLFLOW_TRACKING_URI does not name a tracking server: see team/README.md"
FIRST_HINTS = {
    1: "0 forest settings tried, 2 needed: python demo.py --n-estimators 300 --max-depth 4",
    2: "no demo.py run has the metric balanced_accuracy: add it to score() in demo.py",
    3: "0 wine runs, 5 needed",
    4: NO_DEFAULT_RUN,
    5: "no wine runs yet: exercise 3 first",
    6: (
        "no run in experiment wine-quality-scoring with params model_uri "
        "(models:/wine_quality@...) and model_version yet"
    ),
    7: "no run in experiment my-training-loop yet",
    8: "no autologged run yet: python autolog_grid_search.py, then swap its model",
    9: "no run has system metrics: mlflow.start_run(log_system_metrics=True)",
    10: "no run in experiment wine-quality-evaluation yet",
    11: LOCAL_STORE_HINT,
}


def check(number):
    """What the checker says of exercise ``number``: None when done, else what is missing."""
    return load_lesson("check_exercises.py").main(["--exercise", str(number)])[number]


def wine(*argv):
    """train_wine_elasticnet.py run as ``python train_wine_elasticnet.py *argv``: its run id."""
    return load_lesson("train_wine_elasticnet.py").main(list(argv))["run_id"]


def read_wine():
    """The red wines, as numbers throughout (as the wine lesson reads them)."""
    return pd.read_csv(WINE_CSV).astype(float)


def held_out_wines(seed=42):
    return train_test_split(read_wine(), test_size=0.25, random_state=seed)[1]


# %%
# Nothing done yet
# ----------------
def test_a_fresh_folder_gets_every_first_hint_and_no_store(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    checker = copy_lesson("check_exercises.py", tmp_path / "workshop")
    assert load_lesson(checker).main([]) == FIRST_HINTS
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"exercise 1: not yet: {FIRST_HINTS[1]}"
    assert printed[-1] == "0 of 11 done."
    assert len(printed) == 12
    made = {path.name for path in checker.parent.iterdir()} - {"__pycache__"}
    assert made == {"check_exercises.py"}

    assert load_lesson(checker).main(["--everyone"]) == {}
    assert capsys.readouterr().out == "user      1  2  3  4  5  6  7  8  9 10 11  done\n"


def test_an_empty_store_gets_every_first_hint(tracking_store):
    assert load_lesson("check_exercises.py").main([]) == FIRST_HINTS


def test_an_unreachable_server_is_one_sentence(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(MlflowException) as error:
        load_lesson("check_exercises.py").main([])
    [sentence] = error.value.message.splitlines()
    assert sentence.startswith(f"API request to {url}/api/2.0/mlflow/experiments/get-by-name ")
    assert "Connection refused" in sentence


# %%
# One participant's store, stage by stage
# ---------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template):
    """The module's store, and the run ids the stages hand on to the ones after them."""
    folder = tmp_path_factory.mktemp("exercises")
    shutil.copyfile(empty_store_template, folder / "mlflow.db")
    return {"folder": folder, "uri": sqlite_uri(folder / "mlflow.db"), "runs": {}}


@pytest.fixture
def ada(store, monkeypatch):
    """This process as participant ada, working with the module's store; her MlflowClient."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    monkeypatch.chdir(store["folder"])
    mlflow.set_tracking_uri(store["uri"])
    return mlflow.MlflowClient(store["uri"])


def test_exercise_1_one_forest_setting_is_not_enough(ada, capsys):
    load_lesson("demo.py").main(["--n-estimators", "5", "--max-depth", "2"])
    capsys.readouterr()
    message = check(1)
    assert message == (
        "1 forest setting tried, 2 needed: python demo.py --n-estimators 300 --max-depth 4"
    )
    assert capsys.readouterr().out == f"exercise 1: not yet: {message}\n"  # and no total
    assert check(2) == FIRST_HINTS[2]
    assert check(9) == FIRST_HINTS[9]


def test_exercises_1_2_9_demo_edited_and_run_again(ada, monkeypatch):
    """demo.py as exercises 2 and 9 edit it: one more metric in score(), and system metrics
    (MLflow's switch for every run), sampled every 0.1 s in a run that takes a second."""
    demo = load_lesson("demo.py")
    lesson_score = demo.score

    def score(model, X_test, y_test):
        y_pred, benign, scores = lesson_score(model, X_test, y_test)
        scores["balanced_accuracy"] = balanced_accuracy_score(y_test, y_pred)
        return y_pred, benign, scores

    monkeypatch.setattr(demo, "score", score)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")
    run_id = demo.main(["--n-estimators", "5", "--max-depth", "3"])["run_id"]
    assert check(1) is None
    assert check(9) is None
    assert check(2) == (
        "the demo.py run with balanced_accuracy has no tag of your own "
        "(besides model_type, dataset, owner)"
    )
    ada.set_tag(run_id, "purpose", "exercise 2")
    assert check(2) is None


def test_exercises_3_4_5_four_wine_runs(ada, store):
    for alpha in ["1", "0.9", "0.8", "0.7"]:
        store["runs"][alpha] = wine("--alpha", alpha)
    assert check(3) == "4 wine runs, 5 needed"
    assert check(4) == NO_DEFAULT_RUN
    assert check(5) == "no registered model wine_quality yet"


def test_exercise_3_another_users_default_run_is_not_yours(ada, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    wine()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ada")
    wine("--alpha", "0.6")
    assert check(3) == NO_DEFAULT_RUN
    assert check(4) == NO_DEFAULT_RUN


def test_exercises_3_4_the_default_is_the_lowest_yet(ada):
    wine()
    assert check(3) == "no run beats the default's RMSE 0.733 yet"
    assert check(4) == "no wine run beats the default yet: exercise 3 first"


def test_exercise_3_the_best_tag_must_be_on_the_lowest(ada, store):
    lowest = store["runs"]["lowest"] = wine("--alpha", "0.01")
    second = store["runs"]["second"] = wine("--alpha", "0.05", "--l1-ratio", "0.2")
    assert check(3) == f"the lowest RMSE, 0.625, is run {lowest[:8]}: tag it best=true"
    ada.set_tag(second, "best", "true")
    assert check(3) == (
        f"best=true is on run {second[:8]} (RMSE 0.627), but run {lowest[:8]} has the lowest, 0.625"
    )
    ada.delete_tag(second, "best")
    ada.set_tag(lowest, "best", "true")
    assert check(3) is None


def test_exercise_4_every_run_that_beats_the_default_and_no_other(ada, store):
    lowest, second, worse = store["runs"]["lowest"], store["runs"]["second"], store["runs"]["1"]
    message = "runs that beat the default are not tagged beats_default=true, e.g. run"
    assert check(4) == f"2 of 2 {message} {second[:8]}"
    ada.set_tag(lowest, "beats_default", "true")
    assert check(4) == f"1 of 2 {message} {second[:8]}"
    ada.set_tag(second, "beats_default", "true")
    ada.set_tag(worse, "beats_default", "true")
    assert check(4) == (
        f"run {worse[:8]} is tagged beats_default=true, but its RMSE 0.787 does not beat the "
        "default's 0.733"
    )
    ada.delete_tag(worse, "beats_default")
    assert check(4) is None


def test_half_way_the_checker_prints_a_line_per_exercise(store):
    """`python check_exercises.py` as printed, with exercises 1 to 4 and 9 done."""
    env = {"MLFLOW_TRACKING_URI": store["uri"], "MLFLOW_TRACKING_USERNAME": "ada"}
    result = run_script("check_exercises.py", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "exercise 1: done",
        "exercise 2: done",
        "exercise 3: done",
        "exercise 4: done",
        "exercise 5: not yet: no registered model wine_quality yet",
        f"exercise 6: not yet: {FIRST_HINTS[6]}",
        f"exercise 7: not yet: {FIRST_HINTS[7]}",
        f"exercise 8: not yet: {FIRST_HINTS[8]}",
        "exercise 9: done",
        f"exercise 10: not yet: {FIRST_HINTS[10]}",
        f"exercise 11: not yet: {LOCAL_STORE_HINT}",
        "5 of 11 done.",
    ]


def register(client, run_id):
    """The model of wine run ``run_id`` registered as a new version of wine_quality: its number."""
    experiment_id = client.get_run(run_id).info.experiment_id
    [model] = client.search_logged_models([experiment_id], f"source_run_id = '{run_id}'")
    return str(mlflow.register_model(model.model_uri, "wine_quality").version)


def test_exercise_5_the_alias_on_a_version_of_the_lowest_run(ada, store):
    lowest, second = store["runs"]["lowest"], store["runs"]["second"]
    assert register(ada, second) == "1"
    assert check(5) == f"no version of wine_quality comes from your lowest-RMSE run {lowest[:8]}"
    assert register(ada, lowest) == "2"
    assert check(5) == "version 2 (your lowest-RMSE run) has no alias: give it champion"
    ada.set_registered_model_alias("wine_quality", "champion", "1")
    assert check(5) == "version 2 (your lowest-RMSE run) has no alias: give it champion"
    ada.set_registered_model_alias("wine_quality", "champion", "2")
    assert check(5) is None


def score_by_alias(client, seed):
    """Exercise 6 as a participant solves it: the model loaded by its alias predicts the
    held-out wines of a split with ``seed`` (its own run's is 42), and a run records it."""
    model_uri = "models:/wine_quality@champion"
    version = client.get_model_version_by_alias("wine_quality", "champion").version
    held_out = held_out_wines(seed)
    predicted = mlflow.pyfunc.load_model(model_uri).predict(held_out.drop(columns="quality"))
    holdout_rmse = root_mean_squared_error(held_out["quality"], predicted)
    mlflow.set_experiment("wine-quality-scoring")
    with mlflow.start_run():
        mlflow.log_params({"model_uri": model_uri, "model_version": version})
        mlflow.log_metric("holdout_rmse", holdout_rmse)
    return holdout_rmse


def test_exercise_6_predict_on_the_versions_own_held_out_wines(ada):
    other_rows = score_by_alias(ada, seed=0)
    assert check(6) == (
        f"holdout_rmse {other_rows:.3f} is not the RMSE 0.625 of version 2: predict on its "
        "run's held-out wines (same test_size and seed)"
    )
    assert score_by_alias(ada, seed=42) == pytest.approx(0.625, abs=5e-4)
    assert check(6) is None


def training_loop(epochs):
    """Exercise 7: a linear model trained an epoch at a time, its held-out RMSE per step."""
    from sklearn.linear_model import SGDRegressor
    from sklearn.preprocessing import StandardScaler

    training, held_out = train_test_split(read_wine(), test_size=0.25, random_state=42)
    scaler = StandardScaler().fit(training.drop(columns="quality"))
    X_train, X_test = (
        scaler.transform(rows.drop(columns="quality")) for rows in (training, held_out)
    )
    model = SGDRegressor(random_state=0)
    mlflow.set_experiment("my-training-loop")
    with mlflow.start_run():
        for epoch in range(epochs):
            model.partial_fit(X_train, training["quality"])
            rmse = root_mean_squared_error(held_out["quality"], model.predict(X_test))
            mlflow.log_metric("val_rmse", rmse, step=epoch)


def test_exercise_7_ten_steps_make_a_curve(ada):
    training_loop(epochs=5)
    assert check(7) == "the longest curve has 5 steps, 10 needed"
    training_loop(epochs=12)
    assert check(7) is None


def test_exercise_8_another_model_than_the_lessons(ada):
    load_lesson("autolog_grid_search.py").main([])
    assert check(8) == "every autologged run is the lesson's RidgeClassifier: autolog another model"

    from sklearn.tree import DecisionTreeRegressor

    wines = read_wine()
    mlflow.set_experiment("my-autolog")
    mlflow.sklearn.autolog(log_models=False)
    try:
        with mlflow.start_run():
            DecisionTreeRegressor(max_depth=3, random_state=0).fit(
                wines.drop(columns="quality"), wines["quality"]
            )
    finally:
        mlflow.sklearn.autolog(disable=True)
    assert check(8) is None


def evaluate_candidate(client, candidate, alias="champion"):
    """Exercise 10's evidence: the version the alias points at (the baseline) and the
    candidate evaluated on the same held-out wines, the candidate last (the checker reads the
    newest run), and validated: its RMSE must be lower by 0.001 at least. Returns the
    candidate's run id, the baseline version and "passed" or "failed"."""
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    baseline = str(client.get_model_version_by_alias("wine_quality", alias).version)
    held_out = held_out_wines()
    settings = {
        "data": held_out,
        "targets": "quality",
        "model_type": "regressor",
        "evaluator_config": {"log_model_explainability": False},
    }
    mlflow.set_experiment("wine-quality-evaluation")
    with mlflow.start_run(run_name=f"baseline_v{baseline}"):
        baseline_result = mlflow.models.evaluate(f"models:/wine_quality/{baseline}", **settings)
    with mlflow.start_run(run_name=f"candidate_v{candidate}") as run:
        candidate_result = mlflow.models.evaluate(f"models:/wine_quality/{candidate}", **settings)
    thresholds = {
        "root_mean_squared_error": MetricThreshold(
            min_absolute_change=0.001, greater_is_better=False
        )
    }
    try:
        mlflow.validate_evaluation_results(thresholds, candidate_result, baseline_result)
    except ModelValidationFailedException:
        return run.info.run_id, baseline, "failed"
    return run.info.run_id, baseline, "passed"


def test_exercise_10_rmse_by_hand_is_not_an_evaluation(ada):
    held_out = held_out_wines()
    model = mlflow.pyfunc.load_model("models:/wine_quality@champion")
    mlflow.set_experiment("wine-quality-evaluation")
    with mlflow.start_run():
        predicted = model.predict(held_out.drop(columns="quality"))
        mlflow.log_metric("rmse", root_mean_squared_error(held_out["quality"], predicted))
    assert check(10) == (
        "the evaluation run has no metric root_mean_squared_error: use mlflow.models.evaluate"
    )


def test_exercise_10_a_failed_validation_keeps_the_alias(ada):
    run_id, baseline, validation = evaluate_candidate(ada, candidate="1")
    assert (baseline, validation) == ("2", "failed")
    assert check(10) == "the evaluation run has no tag candidate_version"
    for name, value in [
        ("candidate_version", "1"),
        ("baseline_version", "2"),
        ("alias", "champion"),
    ]:
        ada.set_tag(run_id, name, value)
    assert check(10) == "the evaluation run has no tag validation"
    ada.set_tag(run_id, "validation", validation)
    assert check(10) is None
    ada.set_registered_model_alias("wine_quality", "champion", "1")
    assert check(10) == "validation failed, but champion was moved to the candidate 1"
    ada.set_registered_model_alias("wine_quality", "champion", "2")
    assert check(10) is None


def test_exercise_10_a_passed_validation_moves_the_alias(ada):
    ada.set_registered_model_alias("wine_quality", "champion", "1")  # an older champion
    run_id, baseline, validation = evaluate_candidate(ada, candidate="2")
    assert (baseline, validation) == ("1", "passed")
    tags = {"candidate_version": "2", "baseline_version": "1", "alias": "champion"}
    for name, value in {**tags, "validation": validation}.items():
        ada.set_tag(run_id, name, value)
    assert check(10) == "validation passed, but champion points at version 1, not the candidate 2"
    ada.set_registered_model_alias("wine_quality", "champion", "2")
    assert check(10) is None


def test_at_the_end_everything_is_done_but_the_team_server(ada, capsys):
    assert load_lesson("check_exercises.py").main([]) == {
        **dict.fromkeys(range(1, 11)),
        11: LOCAL_STORE_HINT,
    }
    assert capsys.readouterr().out.splitlines()[-1] == "10 of 11 done."
    assert (
        load_lesson("check_exercises.py").main(["--everyone"])["bob"][3] == "1 wine run, 5 needed"
    )
    assert capsys.readouterr().out.splitlines() == [
        "user      1  2  3  4  5  6  7  8  9 10 11  done",
        "ada       x  x  x  x  x  x  x  x  x  x  .    10",
        "bob       .  .  .  .  .  .  .  .  .  .  .     0",
    ]
