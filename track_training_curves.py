"""Lesson 4: learning curves as step metrics, and the other logging calls.

A small neural network (scikit-learn's MLPClassifier) learns to read
handwritten digits (scikit-learn's 1,797 8x8 images), one epoch (a pass over
the training rows) at a time. Each epoch's loss and accuracy on the training
and validation rows become *step metrics*, so the MLflow UI draws learning
curves. The run also uses ``log_dict``, ``log_text`` and ``log_figure`` once
each, and logs the trained model.

    python track_training_curves.py
    python track_training_curves.py --epochs 60 --learning-rate 0.01
"""

# %%
# Settings
# --------
# Edit the defaults here, or pass flags (``python track_training_curves.py
# --help``). More epochs with a bigger learning rate show the network overfit.
import argparse

EPOCHS = 30
LEARNING_RATE = 0.001
HIDDEN_UNITS = 32
BATCH_SIZE = 64
VALIDATION_SIZE = 0.25
SEED = 0
LOG_EVERY_EPOCHS = 10
RUN_NAME = "mlp_digits_curves"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="passes over the data")
    parser.add_argument(
        "--learning-rate", type=float, default=LEARNING_RATE, help="Adam's step size"
    )
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the split and network")
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    # Above 1, the network's steps are so long that its weights can overflow.
    if not 0 < args.learning_rate <= 1:
        parser.error("--learning-rate must be above 0 and at most 1")
    if not 0 <= args.seed < 2**32:
        parser.error("--seed must be a whole number from 0 to 4294967295")
    return args


# %%
# Where the runs go
# -----------------
# MLflow writes to the tracking store named by ``MLFLOW_TRACKING_URI`` (a team
# server, say) or, without it, to ``mlflow.db`` beside this script: an absolute
# path, so that ``mlflow ui`` started in this folder finds every run, whichever
# folder you started the script from. Files go to ``mlruns/`` beside it.
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
# The data
# --------
# Validation rows the network never trains on show when it starts memorising:
# validation loss turns up while training loss keeps falling.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def load_data(seed):
    X, y = load_digits(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=VALIDATION_SIZE, random_state=seed, stratify=y)


# %%
# Training, one epoch at a time, with step metrics in batches
# -----------------------------------------------------------
# ``partial_fit`` runs one epoch; each value becomes a ``Metric`` with the
# epoch as its ``step``, which the UI draws as a curve. Each logging call is a
# database transaction (or an HTTP request), so ``MlflowClient.log_batch``
# sends every ``LOG_EVERY_EPOCHS`` epochs' points in one call: BENCHMARKS.md
# times 10,000 points at under a second this way, half a minute with a
# ``log_metric`` per value.
# Sent every few epochs, not only at the end, the curves grow in the UI live.
import time
import warnings

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train_one_epoch(network, X, y):
    # scikit-learn's network catches Ctrl+C itself: it ends the epoch early with
    # the warning "Training interrupted by user." and trains on. Made an error
    # here, the interrupt it caught goes on and stops the lesson.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Training interrupted by user", UserWarning)
        try:
            network.partial_fit(X, y, classes=np.unique(y))
        except UserWarning as warning:
            raise warning.__context__ from None


def measure(model, X, y, rows):
    loss = log_loss(y, model.predict_proba(X), labels=model.classes_)
    return {f"{rows}_loss": loss, f"{rows}_accuracy": model.score(X, y)}


def train_with_curves(args, run_id, X_train, X_val, y_train, y_val):
    scaler = StandardScaler().fit(X_train)  # one scale for the network, from training rows
    scaled_train = scaler.transform(X_train)
    scaled_val = scaler.transform(X_val)
    network = MLPClassifier(
        hidden_layer_sizes=(HIDDEN_UNITS,),
        learning_rate_init=args.learning_rate,
        batch_size=BATCH_SIZE,
        random_state=args.seed,
    )
    client = MlflowClient()
    history = {}
    pending = []
    for epoch in range(args.epochs):
        train_one_epoch(network, scaled_train, y_train)
        values = {
            **measure(network, scaled_train, y_train, "train"),
            **measure(network, scaled_val, y_val, "val"),
        }
        timestamp = int(time.time() * 1000)
        for name, value in values.items():
            history.setdefault(name, []).append(value)
            pending.append(Metric(key=name, value=value, timestamp=timestamp, step=epoch))
        if (epoch + 1) % LOG_EVERY_EPOCHS == 0 or epoch == args.epochs - 1:
            client.log_batch(run_id, metrics=pending)
            pending = []
            print(
                f"  epoch {epoch:>3}  val_loss {values['val_loss']:.3f}"
                f"  val_accuracy {values['val_accuracy']:.3f}"
            )
    # The model to keep: the scaler and the network together, so that it
    # predicts from raw pixels as the data comes.
    return make_pipeline(scaler, network), history


# %%
# The other logging calls, each once
# ----------------------------------
# ``log_dict``: the configuration as JSON; ``log_metrics``: summary numbers
# in one call; ``log_text``: a note shown in the UI; ``log_figure``: a
# matplotlib figure straight into the run, no temporary file.
import matplotlib

matplotlib.use("Agg")  # draw into files, no window needed
import matplotlib.pyplot as plt


def learning_curve_figure(history):
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, name in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history[f"train_{name}"], marker=".", label="training")
        ax.plot(history[f"val_{name}"], marker=".", label="validation")
        ax.set(xlabel="Epoch (MLflow step)", ylabel=name, title=f"{name.capitalize()} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    figure.suptitle("MLPClassifier on the digits data: training vs validation")
    return figure


def summarise(history, epochs):
    best_epoch = int(np.argmin(history["val_loss"]))
    summary = {
        "best_epoch": best_epoch,
        "best_val_loss": history["val_loss"][best_epoch],
        "best_val_accuracy": history["val_accuracy"][best_epoch],
    }
    text = f"Lowest validation loss {summary['best_val_loss']:.3f} at epoch {best_epoch}."
    if best_epoch < epochs - 1:
        text += " Later epochs fitted the training rows better, new rows worse: overfitting."
    return summary, text + "\n"


# %%
# The MLflow run
# --------------
# Everything logged inside ``with mlflow.start_run()`` belongs to one run. If
# the block fails or is interrupted, MLflow marks the run FAILED, not RUNNING.
from importlib.metadata import version

from mlflow.models import infer_signature


def main(argv=None):
    args = parse_args(argv)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    settings = {
        "hidden_units": HIDDEN_UNITS,
        "learning_rate": args.learning_rate,
        "batch_size": BATCH_SIZE,
        "epochs": args.epochs,
        "seed": args.seed,
    }

    experiment = use_experiment()
    print(f"Training for {args.epochs} epochs")
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_params(settings)
        mlflow.set_tags({"model_type": "MLPClassifier", "dataset": "sklearn digits"})
        config = {"model": "MLPClassifier", "solver": "adam", **settings}
        mlflow.log_dict(config, "config.json")

        model, history = train_with_curves(args, run.info.run_id, X_train, X_val, y_train, y_val)
        summary, text = summarise(history, args.epochs)
        mlflow.log_metrics(summary)
        mlflow.log_text(text, "summary.txt")
        figure = learning_curve_figure(history)
        mlflow.log_figure(figure, "plots/learning_curve.png")
        plt.close(figure)

        # The model as in lesson 1: skops (the network's optimiser named as
        # trusted), a signature, an input example and exact requirements.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, model.predict(X_train)),
            input_example=X_val.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.neural_network._stochastic_optimizers.AdamOptimizer"],
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")],
        )

    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    shown = {f"final {name}": values[-1] for name, values in history.items()}
    shown[f"lowest val_loss (epoch {summary['best_epoch']})"] = summary["best_val_loss"]
    width = max(len(name) for name in shown)
    for name, value in shown.items():
        print(f"  {name:<{width}}  {value:.3f}")
    print(f"Model URI: {model_info.model_uri}")
    print("Next:      python autolog_grid_search.py, where MLflow logs by itself")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:    {ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    return {
        "run_id": run.info.run_id,
        "model_uri": model_info.model_uri,
        "history": history,
        "summary": summary,
    }


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
