"""Stage 3 of the wine pipeline: score the model on the test wines; new: log the scores to MLflow.

DVC runs this stage after every training, and when the test rows or this
script change. From this folder:

    dvc repro
    dvc metrics show

It writes ``metrics.json``, the model's errors on wines it never saw (``rmse``,
``mae``, in quality points, and ``r2``), which ``dvc metrics show`` and
``dvc exp show`` read. When the train stage logged an MLflow run (the model's
card names it), the same metrics, the test wines as a dataset and
``held_out_rows.json`` go to that run: DVC and MLflow show the same numbers.
"""

# %%
# The model and the test wines
# ----------------------------
# Each input is an output of an earlier stage; run on its own before them,
# this stage says which one is missing.
import json
from pathlib import Path

import pandas as pd
import skops.io

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
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
# The scores
# ----------
# Errors in quality points on the held-out wines: ``rmse`` weighs big misses
# more than ``mae``; ``r2`` is the share of the variance explained.
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error


def score(model, test):
    X = test.drop(columns=TARGET)
    y = test[TARGET]
    predicted = model.predict(X)
    return {
        "rmse": root_mean_squared_error(y, predicted),
        "r2": r2_score(y, predicted),
        "mae": mean_absolute_error(y, predicted),
    }


# %%
# Where the runs go (new)
# -----------------------
# The store train.py logged to: ``MLFLOW_TRACKING_URI`` if set, else
# ``mlflow.db`` in the workshop's folder, the one above dvc_pipeline/.
# ``DVC_ROOT`` names the real dvc_pipeline/, also when DVC runs this file in a
# temporary copy (``dvc exp run --temp``, the queue) that it deletes afterwards.
import os

import mlflow

PIPELINE = Path(os.environ.get("DVC_ROOT", HERE)).resolve()
WORKSHOP = PIPELINE.parent  # the workshop's folder, above dvc_pipeline/
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", LOCAL_STORE)


# %%
# The scores go to the training's run (new)
# -----------------------------------------
# The model card names the run train.py logged; ``start_run(run_id=...)``
# reopens it, so that one run holds the params, the model and the scores.
from mlflow.data.sources import LocalArtifactDatasetSource

WINE_DATA = LocalArtifactDatasetSource((WORKSHOP / "data" / "winequality-red.csv").as_posix())


def log_scores(run_id, metrics, test):
    mlflow.set_tracking_uri(TRACKING_URI)
    with mlflow.start_run(run_id=run_id) as run:
        mlflow.log_metrics(metrics)
        dataset = mlflow.data.from_pandas(
            test, name="winequality-red_evaluation", targets=TARGET, source=WINE_DATA
        )
        mlflow.log_input(dataset, context="evaluation")
        mlflow.log_table(test, artifact_file="held_out_rows.json")  # for load_model.py
    return run


# %%
# Score, save, log
# ----------------
# The stage takes no flags. ``metrics.json`` is what DVC compares between
# experiments; the run in MLflow gets the same numbers, and the lines below
# say where to see them.
import argparse


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    test, model, card = read_inputs()
    metrics = score(model, test)
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print("evaluate: " + ", ".join(f"{name} {value:.3f}" for name, value in metrics.items()))
    if "mlflow_run_id" not in card:  # enable_mlflow: false
        return metrics
    run = log_scores(card["mlflow_run_id"], metrics, test)
    experiment = mlflow.get_experiment(run.info.experiment_id)
    print(f"Run {run.info.run_id} ({run.info.run_name}) in experiment '{experiment.name}'")
    print(f"Model URI: {card['mlflow_model_uri']}")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    link = f"{ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
    print(f"See it:    {link}?workflowType=machine_learning")
    return metrics


# %%
# Run the lesson
# --------------
# Ctrl+C raises KeyboardInterrupt, and SIGTERM (``kill``) is made to raise it
# too: leaving ``with mlflow.start_run()`` that way marks the run FAILED. Then
# one line, and the exit code a shell expects (130 or 143). In a notebook,
# whose command line is the kernel's own, the lesson runs with its defaults.
import signal
import sys

from mlflow.exceptions import MlflowException


def interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)
    try:
        main([] if "ipykernel" in sys.modules else None)
    except KeyboardInterrupt as stop:
        signum = stop.args[0] if stop.args else signal.SIGINT
        name = "Ctrl+C" if signum == signal.SIGINT else "SIGTERM"
        print(f"Stopped by {name}: a run under way is marked FAILED.", file=sys.stderr)
        sys.exit(128 + signum)
    except MlflowException as error:
        sys.exit(f"MLflow: {error.message}")
