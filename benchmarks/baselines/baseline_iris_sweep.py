"""Baseline for train_iris_sweep.py, written the way common MLflow tutorials write it.

The same sweep (a parent run, one nested run per configuration, every model
registered as a version of ``iris_classifier`` with version tags, a
description and the ``champion`` alias on the best) with the usual calls: one
``log_param``, ``set_tag`` and ``log_metric`` call per value, plots saved to a
file and then logged, the default ``log_model`` with an input example
(requirements and signature inferred). A random forest in MLflow's default
skops format needs its Tree type named as trusted, or ``log_model`` refuses
it. Used by benchmarks/run.py; not a lesson.

    python benchmarks/baselines/baseline_iris_sweep.py --grid 50:3,100:5
"""

import argparse
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split

MODEL_NAME = "iris_classifier"
TAGS = {"team": "ml-workshop", "project": "iris-species", "model_family": "random_forest"}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", default="10:2,50:3,100:5,200:10")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    grid = [tuple(int(x) for x in pair.split(":")) for pair in args.grid.split(",")]

    iris = load_iris(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=42, stratify=iris.target
    )
    dataset = mlflow.data.from_pandas(
        X_train.assign(species=iris.target_names[y_train]),
        name="iris_train",
        targets="species",
        source="https://archive.ics.uci.edu/dataset/53/iris",
    )

    mlflow.set_experiment("iris_classification")
    client = MlflowClient()
    results = []
    with mlflow.start_run(run_name="sweep"):
        mlflow.log_param("grid", args.grid)
        mlflow.log_param("n_configurations", len(grid))
        mlflow.log_param("test_size", 0.3)
        mlflow.log_param("split_seed", 42)
        mlflow.log_param("seed", args.seed)
        for key, value in TAGS.items():
            mlflow.set_tag(key, value)
        for n_estimators, max_depth in grid:
            run_name = f"rf_n{n_estimators}_d{max_depth}"
            with mlflow.start_run(run_name=run_name, nested=True):
                mlflow.log_param("n_estimators", n_estimators)
                mlflow.log_param("max_depth", max_depth)
                mlflow.log_param("model_type", "RandomForestClassifier")
                mlflow.log_param("seed", args.seed)
                mlflow.log_param("train_samples", len(X_train))
                mlflow.log_param("test_samples", len(X_test))
                mlflow.log_param("n_features", X_train.shape[1])
                mlflow.log_param("n_classes", len(iris.target_names))
                for key, value in TAGS.items():
                    mlflow.set_tag(key, value)
                mlflow.log_input(dataset, context="training")

                model = RandomForestClassifier(
                    n_estimators=n_estimators,
                    max_depth=max_depth,
                    random_state=args.seed,
                    n_jobs=-1,
                )
                model.fit(X_train, y_train)
                y_pred = model.predict(X_test)
                accuracy = accuracy_score(y_test, y_pred)
                mlflow.log_metric("accuracy", accuracy)
                mlflow.log_metric(
                    "f1_score", f1_score(y_test, y_pred, average="weighted", zero_division=0)
                )
                mlflow.log_metric(
                    "precision",
                    precision_score(y_test, y_pred, average="weighted", zero_division=0),
                )
                mlflow.log_metric(
                    "recall", recall_score(y_test, y_pred, average="weighted", zero_division=0)
                )

                with tempfile.TemporaryDirectory() as folder:
                    fig, ax = plt.subplots(figsize=(5, 4.5))
                    ConfusionMatrixDisplay.from_predictions(
                        y_test, y_pred, display_labels=iris.target_names, ax=ax
                    )
                    ax.set_title(f"Confusion matrix, {run_name} (test set)")
                    path = os.path.join(folder, "confusion_matrix.png")
                    plt.savefig(path)
                    plt.close(fig)
                    mlflow.log_artifact(path, artifact_path="plots")

                model_info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    input_example=X_test.head(5),
                    registered_model_name=MODEL_NAME,
                    skops_trusted_types=["sklearn.tree._tree.Tree"],
                )
                version = str(model_info.registered_model_version)
                client.set_model_version_tag(MODEL_NAME, version, "accuracy", f"{accuracy:.4f}")
                client.set_model_version_tag(MODEL_NAME, version, "n_estimators", n_estimators)
                client.set_model_version_tag(MODEL_NAME, version, "max_depth", max_depth)
                client.set_model_version_tag(MODEL_NAME, version, "run_name", run_name)
                results.append((-accuracy, n_estimators, max_depth, int(version)))
        best = min(results)
        mlflow.log_metric("best_accuracy", -best[0])
        client.update_registered_model(MODEL_NAME, description="Random forests for iris species.")
        client.set_registered_model_alias(MODEL_NAME, "champion", str(best[3]))
    print(f"Champion: {MODEL_NAME} version {best[3]}, accuracy {-best[0]:.3f}")
    return {"champion_version": str(best[3])}


if __name__ == "__main__":
    main()
