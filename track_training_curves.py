"""Lesson 4: learning curves as step metrics, the other logging calls, and autolog.

A small neural network (scikit-learn's MLPClassifier) learns to read
handwritten digits (scikit-learn's bundled 8x8 images, 1,797 of them, no
download), one pass over the training data (an epoch) at a time. After every
epoch the script measures loss and accuracy on the training rows and on
held-out validation rows and logs them as *step metrics*: one value per
epoch, so the MLflow UI draws real learning curves. The points go out in
batches, a few calls for the whole training instead of one per value.

The same run also shows ``log_params``/``log_metrics`` with dicts,
``log_dict``, ``log_text`` and ``log_figure``, each once. A second run lets
``mlflow.sklearn.autolog()`` record a small grid search on its own.

Run it from the repository root or any other folder:

    python track_training_curves.py
    python track_training_curves.py --epochs 60 --learning-rate 0.01

then open the run's "Model metrics" tab in the `mlflow ui` it prints.
"""

# %%
# Settings
# --------
# Defaults for the command-line flags. Edit them here or pass flags.
import argparse
import math

EPOCHS = 30
LEARNING_RATE = 0.001
HIDDEN_UNITS = 32
BATCH_SIZE = 64
VALIDATION_SIZE = 0.25
SEED = 0
# Send the collected step metrics when this many are waiting (MLflow's
# limit for one request) or this many seconds after the last send, whichever
# comes first, and at the end: few calls, yet a long training's curves still
# grow in the UI while it runs.
LOG_BATCH_POINTS = 1000
LOG_EVERY_SECONDS = 5
PRINT_EVERY_EPOCHS = 10
# Regularisation strengths tried by the autologged grid search.
RIDGE_ALPHAS = [0.1, 1.0, 10.0, 100.0]

EXPERIMENT_NAME = "digits-training-curves"
RUN_NAME = "mlp_digits_curves"
AUTOLOG_RUN_NAME = "ridge_grid_search_autolog"


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=EPOCHS,
        help=f"passes over the training data, one step each (default {EPOCHS})",
    )
    parser.add_argument(
        "--learning-rate",
        type=positive_float,
        default=LEARNING_RATE,
        help=f"step size of the Adam optimiser (default {LEARNING_RATE})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"random seed for the split and the network (default {SEED})",
    )
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# A validation set the network never trains on shows when it stops learning
# general rules and starts memorising (validation loss turns up while
# training loss keeps falling). Neural networks need inputs on a common
# scale; the scaler learns its scale from the training rows only.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def load_data(seed):
    data = load_digits(as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(
        data.data, data.target, test_size=VALIDATION_SIZE, random_state=seed, stratify=data.target
    )
    return X_train, X_val, y_train, y_val


# %%
# 2. The learning-curve figure
# ----------------------------
# The UI draws each metric on its own; one figure with both curves side by
# side is what you paste into a report.
import matplotlib

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt

STEP_METRICS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def learning_curve_figure(history):
    epochs = range(len(history["train_loss"]))
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, measure in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        ax.plot(epochs, history[f"train_{measure}"], marker=".", label="training")
        ax.plot(epochs, history[f"val_{measure}"], marker=".", label="validation")
        ax.set_xlabel("Epoch (MLflow step)")
        ax.grid(alpha=0.3)
        ax.legend()
    loss_ax.set_ylabel("Log loss (lower is better)")
    loss_ax.set_title("Loss per epoch")
    accuracy_ax.set_ylabel("Accuracy (higher is better)")
    accuracy_ax.set_title("Accuracy per epoch")
    fig.suptitle("MLPClassifier on the digits data: training vs validation")
    return fig


# %%
# 3. Training, one epoch at a time, with step metrics in batches
# --------------------------------------------------------------
# ``partial_fit`` runs one epoch. Each measurement becomes a ``Metric`` with
# a ``step`` (the epoch), so MLflow keeps the whole history, not just the last
# value. Logging them one ``mlflow.log_metric`` call at a time costs a
# database transaction (or an HTTP request to a tracking server) per value;
# ``MlflowClient.log_batch`` sends many in one. The limit is 1,000 metrics per
# request, and the client splits bigger lists into several requests for you.
import time

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.metrics import accuracy_score, log_loss
from sklearn.neural_network import MLPClassifier


def measure(model, X, y):
    probabilities = model.predict_proba(X)
    predictions = model.classes_[probabilities.argmax(axis=1)]
    return log_loss(y, probabilities, labels=model.classes_), accuracy_score(y, predictions)


def train_with_curves(args, run_id, X_train, X_val, y_train, y_val):
    client = MlflowClient()
    model = MLPClassifier(
        hidden_layer_sizes=(HIDDEN_UNITS,),
        learning_rate_init=args.learning_rate,
        batch_size=BATCH_SIZE,
        random_state=args.seed,
    )
    classes = np.unique(y_train)
    history = {name: [] for name in STEP_METRICS}
    pending = []
    logging_seconds = 0.0
    last_sent = time.monotonic()
    for epoch in range(args.epochs):
        model.partial_fit(X_train, y_train, classes=classes)
        train_loss, train_accuracy = measure(model, X_train, y_train)
        val_loss, val_accuracy = measure(model, X_val, y_val)
        values = {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "train_accuracy": train_accuracy,
            "val_accuracy": val_accuracy,
        }
        timestamp = int(time.time() * 1000)
        for name, value in values.items():
            history[name].append(value)
            pending.append(Metric(key=name, value=value, timestamp=timestamp, step=epoch))
        last_epoch = epoch == args.epochs - 1
        waited = time.monotonic() - last_sent
        if len(pending) >= LOG_BATCH_POINTS or waited >= LOG_EVERY_SECONDS or last_epoch:
            started = time.perf_counter()
            client.log_batch(run_id, metrics=pending)
            logging_seconds += time.perf_counter() - started
            pending = []
            last_sent = time.monotonic()
        if (epoch + 1) % PRINT_EVERY_EPOCHS == 0 or last_epoch:
            print(f"  epoch {epoch:>3}  val_loss {val_loss:.3f}  val_accuracy {val_accuracy:.3f}")
    return history, logging_seconds


# %%
# 4. The run: each other logging call once, for a reason
# ------------------------------------------------------
# - ``log_params`` with a dict: the settings, flat, to filter and compare by.
# - ``log_dict``: the same configuration as one JSON file, keeping its
#   structure (lists, nesting) so a later script can load it back.
# - ``log_metrics`` with a dict: one-off summary numbers, in one call.
# - ``log_text``: a short human-readable summary, shown inline in the UI.
# - ``log_figure``: the learning curves as a PNG, without a temporary file.
import workshop_store


def main(argv=None):
    args = parse_args(argv)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    scaler = StandardScaler().fit(X_train)
    X_train_scaled, X_val_scaled = scaler.transform(X_train), scaler.transform(X_val)

    experiment = workshop_store.use_experiment(EXPERIMENT_NAME)
    config = {
        "data": {"name": "sklearn digits", "validation_size": VALIDATION_SIZE, "seed": args.seed},
        "preprocessing": ["StandardScaler"],
        "model": {
            "type": "MLPClassifier",
            "hidden_layer_sizes": [HIDDEN_UNITS],
            "solver": "adam",
            "learning_rate_init": args.learning_rate,
            "batch_size": BATCH_SIZE,
        },
        "training": {"epochs": args.epochs},
    }
    print(f"Training for {args.epochs} epochs")
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_params(
            {
                "model_type": "MLPClassifier",
                "hidden_units": HIDDEN_UNITS,
                "learning_rate": args.learning_rate,
                "batch_size": BATCH_SIZE,
                "epochs": args.epochs,
                "seed": args.seed,
            }
        )
        mlflow.log_dict(config, "config.json")

        started = time.perf_counter()
        history, logging_seconds = train_with_curves(
            args, run.info.run_id, X_train_scaled, X_val_scaled, y_train, y_val
        )
        best_epoch = int(np.argmin(history["val_loss"]))
        summary_metrics = {
            "best_epoch": best_epoch,
            "best_val_loss": history["val_loss"][best_epoch],
            "best_val_accuracy": history["val_accuracy"][best_epoch],
            "training_seconds": time.perf_counter() - started,
        }
        mlflow.log_metrics(summary_metrics)

        points = len(STEP_METRICS) * args.epochs
        summary = (
            f"MLPClassifier ({HIDDEN_UNITS} hidden units) on sklearn digits, "
            f"{args.epochs} epochs at learning rate {args.learning_rate}.\n"
            f"Lowest validation loss {summary_metrics['best_val_loss']:.3f} at epoch "
            f"{best_epoch} (validation accuracy {summary_metrics['best_val_accuracy']:.3f}).\n"
            f"Last epoch: training loss {history['train_loss'][-1]:.3f}, "
            f"validation loss {history['val_loss'][-1]:.3f}.\n"
            f"{points} step metrics logged in batches in {logging_seconds:.2f} s.\n"
        )
        if best_epoch < args.epochs - 1:
            summary += (
                f"Validation loss rose after epoch {best_epoch}: the later epochs "
                "fitted the training rows better but new rows no better (overfitting).\n"
            )
        mlflow.log_text(summary, "summary.txt")

        fig = learning_curve_figure(history)
        mlflow.log_figure(fig, "plots/learning_curve.png")
        plt.close(fig)

    # %%
    # 5. Autologging: a grid search recorded without a single log call
    # ----------------------------------------------------------------
    # ``mlflow.sklearn.autolog()`` patches scikit-learn's ``fit`` so it logs by
    # itself. On a grid search it records what the manual calls above did not:
    # every setting of the search, the best parameters and cross-validation
    # score, training metrics, cv_results.csv, the estimator's HTML diagram, a
    # training confusion matrix, the training data as the run's input, one
    # child run per candidate with all of its settings, cross-validation
    # scores and fit times, and (because ``score`` is called inside the run) a
    # post-training metric, explained in metric_info.json.
    #
    # Two choices, both deliberate. ``log_models=False``: autolog would save
    # both the search and its best estimator with cloudpickle (MLflow itself
    # warns that loading pickle can run arbitrary code) and guess their
    # requirements in a subprocess, about ten seconds each; lesson 1 shows how
    # to log a model properly. A RidgeClassifier, not the network: for models
    # with ``predict_proba``, MLflow 3.17.2's autolog computes a training log
    # loss with an argument name scikit-learn 1.9 deprecated, which prints a
    # FutureWarning we do not want in the workshop's output.
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    search = GridSearchCV(
        make_pipeline(StandardScaler(), RidgeClassifier()),
        param_grid={"ridgeclassifier__alpha": RIDGE_ALPHAS},
        cv=3,
    )
    mlflow.sklearn.autolog(log_models=False)
    try:
        with mlflow.start_run(run_name=AUTOLOG_RUN_NAME) as autolog_run:
            search.fit(X_train, y_train)
            ridge_val_accuracy = search.score(X_val, y_val)
    finally:
        # Autolog stays on for the whole process until switched off.
        mlflow.sklearn.autolog(disable=True)

    # %%
    # 6. What to look at next
    # -----------------------
    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    print(f"  final train_loss     {history['train_loss'][-1]:.3f}")
    print(f"  final val_loss       {history['val_loss'][-1]:.3f}")
    print(f"  final val_accuracy   {history['val_accuracy'][-1]:.3f}")
    print(f"  lowest val_loss      {summary_metrics['best_val_loss']:.3f} at epoch {best_epoch}")
    print(f"  {points} step metrics logged in batches in {logging_seconds:.2f} s")
    print(f"Autologged run {autolog_run.info.run_id} ({AUTOLOG_RUN_NAME})")
    print(f"  best alpha {search.best_params_['ridgeclassifier__alpha']}", end="")
    print(f", validation accuracy {ridge_val_accuracy:.3f}")
    for line in workshop_store.where_to_look(run):
        print(line)
    return {
        "run_id": run.info.run_id,
        "autolog_run_id": autolog_run.info.run_id,
        "history": history,
        "summary_metrics": summary_metrics,
        "ridge_val_accuracy": ridge_val_accuracy,
    }


if __name__ == "__main__":
    main()
