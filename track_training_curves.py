"""Lesson 4: learning curves as step metrics, and the other logging calls.

A small neural network (scikit-learn's MLPClassifier) learns to read
handwritten digits (scikit-learn's 1,797 8x8 images), one epoch (a pass over
the training rows) at a time. Each epoch's loss and accuracy on the training
and validation rows become *step metrics*, so the MLflow UI draws learning curves.
The run also uses ``log_dict``, ``log_text`` and ``log_figure`` once each.

    python track_training_curves.py
    python track_training_curves.py --epochs 60 --learning-rate 0.01
"""

# %%
# Settings
# --------
import plumbing

EPOCHS = 30
LEARNING_RATE = 0.001
HIDDEN_UNITS = 32
BATCH_SIZE = 64
VALIDATION_SIZE = 0.25
SEED = 0
LOG_EVERY_EPOCHS = 10  # one log_batch call per 10 epochs: few calls, live curves in the UI
EXPERIMENT_NAME = "digits-training-curves"
RUN_NAME = "mlp_digits_curves"


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--epochs", type=plumbing.positive_int, default=EPOCHS, help="passes over the data")
    add("--learning-rate", type=plumbing.learning_rate, default=LEARNING_RATE, help="Adam's")
    add("--seed", type=plumbing.seed, default=SEED, help="seed for the split and the network")
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# Validation rows the network never trains on show when it starts memorising:
# validation loss turns up while training loss keeps falling.
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def load_data(seed):
    X, y = load_digits(return_X_y=True, as_frame=True)
    return train_test_split(X, y, test_size=VALIDATION_SIZE, random_state=seed, stratify=y)


# %%
# 2. Training, one epoch at a time, with step metrics in batches
# --------------------------------------------------------------
# ``partial_fit`` runs one epoch; each value becomes a ``Metric`` with the epoch as its
# ``step``. ``MlflowClient.log_batch`` sends many per call, not a transaction per value.
import time

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier


def measure(model, X, y, rows):
    loss = log_loss(y, model.predict_proba(X), labels=model.classes_)
    return {f"{rows}_loss": loss, f"{rows}_accuracy": model.score(X, y)}


def train_with_curves(args, run_id, X_train, X_val, y_train, y_val):
    scaler = StandardScaler().fit(X_train)  # one scale for the network, from training rows
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    model = MLPClassifier((HIDDEN_UNITS,), learning_rate_init=args.learning_rate)
    model.set_params(batch_size=BATCH_SIZE, random_state=args.seed)
    history, pending = {}, []
    for epoch in range(args.epochs):
        model.partial_fit(X_train, y_train, classes=np.unique(y_train))
        values = measure(model, X_train, y_train, "train") | measure(model, X_val, y_val, "val")
        timestamp = int(time.time() * 1000)
        for name, value in values.items():
            history.setdefault(name, []).append(value)
            pending.append(Metric(key=name, value=value, timestamp=timestamp, step=epoch))
        if epoch % LOG_EVERY_EPOCHS == LOG_EVERY_EPOCHS - 1 or epoch == args.epochs - 1:
            MlflowClient().log_batch(run_id, metrics=pending)
            pending = []
            val_loss, val_accuracy = values["val_loss"], values["val_accuracy"]
            print(f"  epoch {epoch:>3}  val_loss {val_loss:.3f}  val_accuracy {val_accuracy:.3f}")
    return history


# %%
# 3. The run: each other logging call once, for a reason
# ------------------------------------------------------
# ``log_dict``: the config as JSON; ``log_metrics``: summary numbers in one call;
# ``log_text``: a note shown in the UI; ``log_figure``: a PNG, no temporary file.
import matplotlib

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt


def learning_curve_figure(history):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, name in zip(axes, ("loss", "accuracy"), strict=True):
        ax.plot(history[f"train_{name}"], marker=".", label="training")
        ax.plot(history[f"val_{name}"], marker=".", label="validation")
        ax.set(xlabel="Epoch (MLflow step)", ylabel=name, title=f"{name.capitalize()} per epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("MLPClassifier on the digits data: training vs validation")
    return fig


def main(argv=None):
    args = parse_args(argv)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    experiment = plumbing.use_experiment(EXPERIMENT_NAME)
    settings = {"hidden_units": HIDDEN_UNITS, "learning_rate": args.learning_rate}
    settings |= {"batch_size": BATCH_SIZE, "epochs": args.epochs, "seed": args.seed}
    print(f"Training for {args.epochs} epochs")
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_params(settings)
        mlflow.set_tags({"model_type": "MLPClassifier", "dataset": "sklearn digits"})
        mlflow.log_dict(settings | {"model": "MLPClassifier", "solver": "adam"}, "config.json")
        history = train_with_curves(args, run.info.run_id, X_train, X_val, y_train, y_val)
        best_epoch = int(np.argmin(history["val_loss"]))
        summary = {"best_epoch": best_epoch, "best_val_loss": history["val_loss"][best_epoch]}
        summary["best_val_accuracy"] = history["val_accuracy"][best_epoch]
        mlflow.log_metrics(summary)
        text = f"Lowest validation loss {summary['best_val_loss']:.3f} at epoch {best_epoch}."
        if best_epoch < args.epochs - 1:
            text += " Later epochs fitted the training rows better, new rows worse: overfitting."
        mlflow.log_text(text + "\n", "summary.txt")
        fig = learning_curve_figure(history)
        mlflow.log_figure(fig, "plots/learning_curve.png")
        plt.close(fig)

    final = {f"final {name}": values[-1] for name, values in history.items()}
    metrics = final | {f"lowest val_loss (epoch {best_epoch})": summary["best_val_loss"]}
    next_steps = ["Let MLflow log by itself:  python autolog_grid_search.py"]
    plumbing.print_summary(run, experiment, metrics, next_steps=next_steps)
    return {"run_id": run.info.run_id, "history": history, "summary": summary}


if __name__ == "__main__":
    main()
