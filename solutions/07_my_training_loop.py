"""Solution to exercise 7: a learning curve from a training loop of your own.

A linear model learns the wine quality scores by stochastic gradient descent
(scikit-learn's SGDRegressor), one epoch (a pass over the training wines) per
call of ``partial_fit``. After each epoch the loop logs the RMSE on the
training and the held-out wines with the epoch as the metric's ``step``: the
MLflow UI draws two curves. The run goes to the experiment
``my-training-loop``. From the workshop's folder:

    python solutions/07_my_training_loop.py
    python solutions/07_my_training_loop.py --epochs 30 --learning-rate 0.001
"""

# %%
# Settings
# --------
# Ten epochs at least, so the curve has ten points.
import argparse

EPOCHS = 20
LEARNING_RATE = 0.0001
TEST_SIZE = 0.25
SEED = 42
RUN_NAME = "sgd_wine_epochs"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the data")
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE, help="step size")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the split and shuffling")
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if not 0 < args.learning_rate <= 0.1:
        parser.error("--learning-rate must be above 0 and at most 0.1")
    if not 0 <= args.seed < 2**32:
        parser.error("--seed must be a whole number from 0 to 4294967295")
    return args


# %%
# Where the runs go
# -----------------
# The lessons' store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the
# workshop's root, the folder above this one, whichever folder you start this
# script from. Files go to ``mlruns/`` beside it.
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this script lives in solutions/, one folder below the root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "my-training-loop"


def use_experiment():
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:  # a team server, say: whoever runs it set it up
        return mlflow.set_experiment(EXPERIMENT_NAME)
    # The first script to open a new store creates its tables, and MLflow does
    # that without a lock: scripts started at once would break the store. The
    # lock makes the others wait their turn, and then find the tables made.
    with FileLock(WORKSHOP / "mlflow.db.lock"):
        # Write-ahead logging, kept in the file once set: a reader never blocks a
        # writer, so a run stopped by Ctrl+C just as MLflow read from the store
        # can still be marked FAILED (without it, "database is locked").
        with closing(sqlite3.connect(WORKSHOP / "mlflow.db")) as store:
            store.execute("PRAGMA journal_mode=WAL")
        if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
            # Files go to mlruns/ beside the store, whatever folder the script
            # was started in (MLflow's default is ./mlruns there).
            location = (WORKSHOP / "mlruns" / EXPERIMENT_NAME).as_uri()
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        return mlflow.set_experiment(EXPERIMENT_NAME)


# %%
# The data
# --------
# Lesson 2's wines and split. Gradient descent needs features on one scale:
# the scaler learns it from the training wines only.
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

WINE_CSV = WORKSHOP / "data" / "winequality-red.csv"
TARGET = "quality"


def load_data(seed):
    wine = pd.read_csv(WINE_CSV).astype(float)
    training, held_out = train_test_split(wine, test_size=TEST_SIZE, random_state=seed)
    scaler = StandardScaler().fit(training.drop(columns=TARGET))
    X_train = scaler.transform(training.drop(columns=TARGET))
    X_test = scaler.transform(held_out.drop(columns=TARGET))
    return X_train, training[TARGET], X_test, held_out[TARGET]


# %%
# The training loop, one step metric per epoch
# --------------------------------------------
# ``partial_fit`` runs one epoch; ``log_metrics(..., step=epoch)`` adds a
# point to each curve. A small learning rate makes the error fall over many
# epochs rather than in the first one.
from sklearn.linear_model import SGDRegressor
from sklearn.metrics import root_mean_squared_error


def main(argv=None):
    args = parse_args(argv)
    X_train, y_train, X_test, y_test = load_data(args.seed)
    model = SGDRegressor(learning_rate="constant", eta0=args.learning_rate, random_state=args.seed)

    experiment = use_experiment()
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_params(
            {"epochs": args.epochs, "learning_rate": args.learning_rate, "seed": args.seed}
        )
        for epoch in range(args.epochs):
            model.partial_fit(X_train, y_train)
            rmse = {
                "train_rmse": root_mean_squared_error(y_train, model.predict(X_train)),
                "val_rmse": root_mean_squared_error(y_test, model.predict(X_test)),
            }
            mlflow.log_metrics(rmse, step=epoch)
            if epoch % 5 == 4 or epoch == args.epochs - 1:
                print(
                    f"  epoch {epoch:3d}  train_rmse {rmse['train_rmse']:.3f}"
                    f"  val_rmse {rmse['val_rmse']:.3f}"
                )

    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    print("Check it:  python check_exercises.py --exercise 7")
    return {"run_id": run.info.run_id, "metrics": rmse}


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
