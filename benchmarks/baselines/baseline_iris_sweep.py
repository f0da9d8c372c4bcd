"""train_iris_sweep.py's work the way common MLflow tutorials write it: one call per value,
plots saved to files and then logged, the default ``log_model``, forests on every core."""

import argparse
import os
import tempfile

import matplotlib.pyplot as plt
import mlflow
from mlflow import MlflowClient
from sklearn import metrics
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--grid", default="10:2,50:3,100:5,200:10")
args = parser.parse_args()

data = load_iris(as_frame=True)
table = data.data.assign(species=data.target_names[data.target])
train, test = train_test_split(table, test_size=0.3, random_state=42, stratify=table.species)
X_train, y_train = train.drop(columns="species"), train.species
X_test, y_test = test.drop(columns="species"), test.species

mlflow.set_experiment("iris_classification")
client = MlflowClient()
results = []
with mlflow.start_run(run_name="sweep"):
    mlflow.log_param("grid", args.grid)
    mlflow.log_param("test_size", 0.3)
    mlflow.log_param("split_seed", 42)
    for pair in args.grid.split(","):
        n_estimators, max_depth = (int(number) for number in pair.split(":"))
        with mlflow.start_run(run_name=f"rf_n{n_estimators}_d{max_depth}", nested=True):
            mlflow.log_param("n_estimators", n_estimators)
            mlflow.log_param("max_depth", max_depth)
            mlflow.log_param("seed", 42)
            mlflow.set_tag("model_type", "RandomForestClassifier")
            mlflow.set_tag("dataset", "sklearn iris")
            mlflow.log_input(mlflow.data.from_pandas(train, targets="species"), context="training")
            mlflow.log_input(mlflow.data.from_pandas(test, targets="species"), context="evaluation")
            mlflow.log_table(test, artifact_file="held_out_rows.json")

            model = RandomForestClassifier(
                n_estimators=n_estimators, max_depth=max_depth, random_state=42, n_jobs=-1
            )
            y_pred = model.fit(X_train, y_train).predict(X_test)
            accuracy = metrics.accuracy_score(y_test, y_pred)
            mlflow.log_metric("accuracy", accuracy)
            average = {"average": "weighted", "zero_division": 0}
            mlflow.log_metric("f1_score", metrics.f1_score(y_test, y_pred, **average))
            mlflow.log_metric("precision", metrics.precision_score(y_test, y_pred, **average))
            mlflow.log_metric("recall", metrics.recall_score(y_test, y_pred, **average))
            metrics.ConfusionMatrixDisplay.from_predictions(y_test, y_pred)
            path = os.path.join(tempfile.mkdtemp(), "confusion_matrix.png")
            plt.savefig(path)
            plt.close()
            mlflow.log_artifact(path, artifact_path="plots")

            info = mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=X_test.head(5),
                registered_model_name="iris_classifier",
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
            version = str(info.registered_model_version)
            client.set_model_version_tag("iris_classifier", version, "accuracy", accuracy)
            client.set_model_version_tag("iris_classifier", version, "n_estimators", n_estimators)
            client.set_model_version_tag("iris_classifier", version, "max_depth", max_depth)
            results.append((-accuracy, n_estimators, max_depth, int(version)))
    best = min(results)
    mlflow.log_metric("best_accuracy", -best[0])
    client.set_registered_model_alias("iris_classifier", "champion", str(best[3]))
