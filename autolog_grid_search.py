"""Lesson 5: autologging, a grid search recorded without a single log call.

``mlflow.sklearn.autolog()`` patches scikit-learn's ``fit`` so that it logs
by itself. Here it records a small grid search (a linear RidgeClassifier,
four values of ``alpha``, 3-fold cross-validation) on the handwritten digits
of lesson 4: every setting of the search, the best ``alpha`` and its
cross-validation score, training metrics, ``cv_results.csv``, the estimator's
diagram, a training confusion matrix, the training data as the run's input,
one child run per candidate and, because ``score`` is called inside the run,
the validation score. Compare it with lesson 4, where every call is ours.

    python autolog_grid_search.py
"""

# %%
# Settings
# --------
# The candidates of the grid search; ``--seed`` changes the split of the data.
import argparse

RIDGE_ALPHAS = [0.1, 1.0, 10.0, 100.0]
VALIDATION_SIZE = 0.25
SEED = 0
RUN_NAME = "ridge_grid_search_autolog"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the split")
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    if not 0 <= args.seed < 2**32:
        parser.error("--seed must be a whole number from 0 to 4294967295")
    return args


# %%
# Where the runs go
# -----------------
# MLflow writes to the tracking store named by ``MLFLOW_TRACKING_URI`` (a team
# server, say) or, without it, to ``mlflow.db`` beside this script: an absolute
# path, so that ``mlflow ui`` started in this folder finds every run, whichever
# folder you started the script from. Files go to ``mlruns/`` beside it. The
# experiment is lesson 4's: the same data, so the runs sit side by side.
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
LOCAL_STORE = "sqlite:///" + (HERE / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "digits-training-curves"


def use_experiment():
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:  # a team server, say: whoever runs it set it up
        return mlflow.set_experiment(EXPERIMENT_NAME)
    # The first script to open a new store creates its tables, and MLflow does
    # that without a lock: scripts started at once would break the store. The
    # lock makes the others wait their turn, and then find the tables made.
    with FileLock(HERE / "mlflow.db.lock"):
        # Write-ahead logging, kept in the file once set: a reader never blocks a
        # writer, so a run stopped by Ctrl+C just as MLflow read from the store
        # can still be marked FAILED (without it, "database is locked").
        with closing(sqlite3.connect(HERE / "mlflow.db")) as store:
            store.execute("PRAGMA journal_mode=WAL")
        if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
            # Files go to mlruns/ beside the store, whatever folder the script
            # was started in (MLflow's default is ./mlruns there).
            location = (HERE / "mlruns" / EXPERIMENT_NAME).as_uri()
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        return mlflow.set_experiment(EXPERIMENT_NAME)


# %%
# The data and the search
# -----------------------
# The same digits and split as lesson 4. The scaler sits inside the pipeline,
# so cross-validation learns it from each fold's training rows only.
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data(seed):
    X, y = load_digits(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=VALIDATION_SIZE, random_state=seed, stratify=y)


# %%
# The autologged run
# ------------------
# Two choices are deliberate. ``log_models=False``: autolog would save the
# search and its best model with pickle (loading pickle can run arbitrary
# code) and work out their requirements, about ten seconds per model; lesson 1
# logs a model properly. A RidgeClassifier: for models with ``predict_proba``,
# MLflow 3.17.2's autolog calls ``log_loss`` with an argument scikit-learn 1.9
# deprecated, which prints a FutureWarning. Autologging stays on for the whole
# process until it is switched off, so ``finally`` switches it off.
def main(argv=None):
    args = parse_args(argv)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    pipeline = make_pipeline(StandardScaler(), RidgeClassifier())
    search = GridSearchCV(pipeline, {"ridgeclassifier__alpha": RIDGE_ALPHAS}, cv=3)

    experiment = use_experiment()
    mlflow.sklearn.autolog(log_models=False)
    try:
        with mlflow.start_run(run_name=RUN_NAME) as run:
            search.fit(X_train, y_train)
            val_accuracy = search.score(X_val, y_val)
    finally:
        mlflow.sklearn.autolog(disable=True)

    best_alpha = search.best_params_["ridgeclassifier__alpha"]
    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    print(f"  best cross-validation score  {search.best_score_:.3f}")
    print(f"  validation accuracy          {val_accuracy:.3f}")
    print(f"Best alpha: {best_alpha} (of {', '.join(map(str, RIDGE_ALPHAS))})")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:    {ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    return {"run_id": run.info.run_id, "best_alpha": best_alpha, "val_accuracy": val_accuracy}


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
