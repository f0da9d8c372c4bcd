"""Baseline for track_training_curves.py, written the way common MLflow tutorials write it.

The same network, data, epochs and autologged grid search, with the usual
calls: one ``mlflow.log_metric(name, value, step=epoch)`` per value inside the
training loop, one ``log_param`` per setting, the figure saved to a file and
then logged. Autolog gets ``log_models=False`` as in the lesson, so both log
the same things. Used by benchmarks/run.py; not a lesson.

    python benchmarks/baselines/baseline_training_curves.py --epochs 30
"""

import argparse
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--learning-rate", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    digits = load_digits(as_frame=True)
    X_train, X_val, y_train, y_val = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    scaler = StandardScaler().fit(X_train)
    X_train_scaled, X_val_scaled = scaler.transform(X_train), scaler.transform(X_val)

    mlflow.set_experiment("digits-training-curves")
    with mlflow.start_run(run_name="mlp_digits_curves") as run:
        mlflow.log_param("model_type", "MLPClassifier")
        mlflow.log_param("hidden_units", 32)
        mlflow.log_param("learning_rate", args.learning_rate)
        mlflow.log_param("batch_size", 64)
        mlflow.log_param("epochs", args.epochs)
        mlflow.log_param("seed", args.seed)
        mlflow.log_dict(
            {
                "data": {"name": "sklearn digits", "validation_size": 0.25, "seed": args.seed},
                "preprocessing": ["StandardScaler"],
                "model": {
                    "type": "MLPClassifier",
                    "hidden_layer_sizes": [32],
                    "solver": "adam",
                    "learning_rate_init": args.learning_rate,
                    "batch_size": 64,
                },
                "training": {"epochs": args.epochs},
            },
            "config.json",
        )

        model = MLPClassifier(
            hidden_layer_sizes=(32,),
            learning_rate_init=args.learning_rate,
            batch_size=64,
            random_state=args.seed,
        )
        classes = np.unique(y_train)
        history = {"train_loss": [], "val_loss": [], "train_accuracy": [], "val_accuracy": []}
        for epoch in range(args.epochs):
            model.partial_fit(X_train_scaled, y_train, classes=classes)
            for split, X, y in (("train", X_train_scaled, y_train), ("val", X_val_scaled, y_val)):
                probabilities = model.predict_proba(X)
                loss = log_loss(y, probabilities, labels=model.classes_)
                accuracy = accuracy_score(y, model.classes_[probabilities.argmax(axis=1)])
                history[f"{split}_loss"].append(loss)
                history[f"{split}_accuracy"].append(accuracy)
            for name in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
                mlflow.log_metric(name, history[name][-1], step=epoch)

        best_epoch = int(np.argmin(history["val_loss"]))
        mlflow.log_metric("best_epoch", best_epoch)
        mlflow.log_metric("best_val_loss", history["val_loss"][best_epoch])
        mlflow.log_metric("best_val_accuracy", history["val_accuracy"][best_epoch])
        mlflow.log_text(
            f"Lowest validation loss {history['val_loss'][best_epoch]:.3f} at epoch {best_epoch}\n",
            "summary.txt",
        )
        with tempfile.TemporaryDirectory() as folder:
            fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(10, 4))
            for ax, measure in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
                ax.plot(history[f"train_{measure}"], marker=".", label="training")
                ax.plot(history[f"val_{measure}"], marker=".", label="validation")
                ax.legend()
            path = os.path.join(folder, "learning_curve.png")
            plt.savefig(path)
            plt.close(fig)
            mlflow.log_artifact(path, artifact_path="plots")

    mlflow.sklearn.autolog(log_models=False)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), RidgeClassifier()),
        param_grid={"ridgeclassifier__alpha": [0.1, 1.0, 10.0, 100.0]},
        cv=3,
    )
    with mlflow.start_run(run_name="ridge_grid_search_autolog"):
        search.fit(X_train, y_train)
        search.score(X_val, y_val)
    mlflow.sklearn.autolog(disable=True)
    print(f"Run {run.info.run_id}: final val_loss {history['val_loss'][-1]:.3f}")
    return {"run_id": run.info.run_id}


if __name__ == "__main__":
    main()
