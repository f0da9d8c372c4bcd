"""Stage 3 of the wine pipeline: score the model on the test wines; new: log the scores to MLflow.

DVC runs this stage after every training, and when the test rows or this
script change:

    dvc repro
    dvc metrics show

It writes ``metrics.json``, the model's errors on wines it never saw (``rmse``,
``mae``, in quality points, and ``r2``), which ``dvc metrics show`` and
``dvc exp show`` read. When the train stage logged an MLflow run (the model's
card names it), the same metrics, the test wines as a dataset and
``held_out_rows.json`` go to that run: DVC and MLflow show the same numbers.
"""

# %%
# 1. The model and the test wines
# -------------------------------
# Each input is an output of an earlier stage; run on its own before them,
# this stage says which one is missing.
import json
from pathlib import Path

import pandas as pd
import skops.io

HERE = Path(__file__).resolve().parent  # the project folder, or DVC's copy of it
TEST_ROWS = HERE / "prepared" / "test.csv"
MODEL_DIR = HERE / "model"
TARGET = "quality"


def read_inputs():
    for path in (TEST_ROWS, MODEL_DIR / "model.skops", MODEL_DIR / "model_card.json"):
        if not path.is_file():
            raise SystemExit(f"There is no file {path}: `dvc repro` runs the stages that make it.")
    test = pd.read_csv(TEST_ROWS)
    model = skops.io.load(MODEL_DIR / "model.skops")  # scikit-learn's types are trusted
    card = json.loads((MODEL_DIR / "model_card.json").read_text())
    return test, model, card


# %%
# 2. The scores
# -------------
# Errors in quality points on the held-out wines: ``rmse`` weighs big misses
# more than ``mae``; ``r2`` is the share of the variance explained.
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error


def score(model, test):
    X, y = test.drop(columns=TARGET), test[TARGET]
    predicted = model.predict(X)
    return {
        "rmse": root_mean_squared_error(y, predicted),
        "r2": r2_score(y, predicted),
        "mae": mean_absolute_error(y, predicted),
    }


# %%
# 3. MLflow: the scores go to the training's run (new)
# ----------------------------------------------------
# The store is found as in train.py: DVC_ROOT is the real project folder even
# when DVC runs this script in a temporary copy. ``start_run(run_id=...)``
# reopens the run train.py logged, so one run holds params, model and scores.
import os
import sys

WORKSHOP = Path(os.environ.get("DVC_ROOT", HERE)).resolve().parent
sys.path.insert(0, str(WORKSHOP))
import mlflow
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.exceptions import MlflowException

import plumbing

WINE_DATA = LocalArtifactDatasetSource((WORKSHOP / "data" / "winequality-red.csv").as_posix())


def log_scores(run_id, metrics, test):
    store = plumbing.connect()
    try:
        experiment = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id)
    except MlflowException:
        raise SystemExit(
            f"The MLflow run {run_id} that train.py logged is not in {store}: "
            "run `dvc repro --force` to train and log again."
        ) from None
    with mlflow.start_run(run_id=run_id) as run:
        mlflow.log_metrics(metrics)
        name, source = "winequality-red_evaluation", WINE_DATA
        dataset = mlflow.data.from_pandas(test, name=name, targets=TARGET, source=source)
        mlflow.log_input(dataset, context="evaluation")
        mlflow.log_table(test, artifact_file="held_out_rows.json")  # for load_model.py
    return run, experiment


def main():
    test, model, card = read_inputs()
    metrics = score(model, test)
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print("evaluate: " + ", ".join(f"{name} {value:.3f}" for name, value in metrics.items()))
    if card.get("mlflow_run_id"):
        run, experiment = log_scores(card["mlflow_run_id"], metrics, test)
        next_steps = [
            "Serve it (from the workshop's folder):  "
            f"python serve_model.py --model-uri {card['mlflow_model_uri']}",
            "Compare the runs:  python compare_runs.py --experiment wine-quality-dvc",
        ]
        plumbing.print_summary(run, experiment, metrics, card["mlflow_model_uri"], next_steps)
    return metrics


if __name__ == "__main__":
    main()
