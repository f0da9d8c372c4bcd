"""track_training_curves.py's work the way common MLflow tutorials write it: one ``log_metric``
call per value in the training loop, one ``log_param`` per setting, the figure saved to a file."""

import argparse
import os
import tempfile

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=30)
args = parser.parse_args()

digits = load_digits(as_frame=True)
X_train, X_val, y_train, y_val = train_test_split(
    digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
)
scaler = StandardScaler().fit(X_train)
splits = {"train": (scaler.transform(X_train), y_train), "val": (scaler.transform(X_val), y_val)}

mlflow.set_experiment("digits-training-curves")
with mlflow.start_run(run_name="mlp_digits_curves"):
    mlflow.log_param("model_type", "MLPClassifier")
    mlflow.log_param("hidden_units", 32)
    mlflow.log_param("learning_rate", 0.001)
    mlflow.log_param("batch_size", 64)
    mlflow.log_param("epochs", args.epochs)
    mlflow.log_param("seed", 0)
    mlflow.log_dict({"model": "MLPClassifier", "hidden_layer_sizes": [32]}, "config.json")

    model = MLPClassifier(hidden_layer_sizes=(32,), batch_size=64, random_state=0)
    history = {"train_loss": [], "val_loss": [], "train_accuracy": [], "val_accuracy": []}
    for epoch in range(args.epochs):
        model.partial_fit(*splits["train"], classes=np.unique(y_train))
        for split, (X, y) in splits.items():
            probabilities = model.predict_proba(X)
            loss = log_loss(y, probabilities, labels=model.classes_)
            accuracy = accuracy_score(y, model.classes_[probabilities.argmax(axis=1)])
            mlflow.log_metric(f"{split}_loss", loss, step=epoch)
            mlflow.log_metric(f"{split}_accuracy", accuracy, step=epoch)
            history[f"{split}_loss"].append(loss)
            history[f"{split}_accuracy"].append(accuracy)

    best_epoch = int(np.argmin(history["val_loss"]))
    mlflow.log_metric("best_epoch", best_epoch)
    mlflow.log_metric("best_val_loss", history["val_loss"][best_epoch])
    mlflow.log_metric("best_val_accuracy", history["val_accuracy"][best_epoch])
    mlflow.log_text(f"Lowest validation loss at epoch {best_epoch}\n", "summary.txt")
    for name, values in history.items():
        plt.plot(values, label=name)
    plt.legend()
    path = os.path.join(tempfile.mkdtemp(), "learning_curve.png")
    plt.savefig(path)
    mlflow.log_artifact(path, artifact_path="plots")
