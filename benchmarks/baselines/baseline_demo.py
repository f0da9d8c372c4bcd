"""Baseline for demo.py: the same run, written the way common MLflow tutorials write it.

Same data, model, params, metrics, tags, input, plots, report and model as
demo.py, logged the usual way: one call per value, plots saved to a file and
then logged, the default ``log_model`` (requirements and signature inferred by
MLflow from the input example). Only what MLflow 3.17 itself demands is added:
a random forest in MLflow's default skops format needs its Tree type named as
trusted, or ``log_model`` refuses it. Used by benchmarks/run.py; not a lesson.

    python benchmarks/baselines/baseline_demo.py --n-estimators 100
"""

import argparse
import getpass
import os
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow
import mlflow.sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    RocCurveDisplay,
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data,
        data.target,
        test_size=args.test_size,
        random_state=args.seed,
        stratify=data.target,
    )

    mlflow.set_experiment("demo-mlflow-artifacts")
    with mlflow.start_run(run_name="random_forest_breast_cancer") as run:
        mlflow.log_param("n_estimators", args.n_estimators)
        mlflow.log_param("max_depth", args.max_depth)
        mlflow.log_param("test_size", args.test_size)
        mlflow.log_param("seed", args.seed)
        mlflow.log_param("stratify", True)
        mlflow.set_tag("model_type", "RandomForestClassifier")
        mlflow.set_tag("dataset", "sklearn breast_cancer")
        mlflow.set_tag("owner", getpass.getuser())
        training_table = X_train.assign(diagnosis=data.target_names[y_train])
        dataset = mlflow.data.from_pandas(
            training_table,
            name="breast_cancer_train",
            targets="diagnosis",
            source="https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic",
        )
        mlflow.log_input(dataset, context="training")

        model = RandomForestClassifier(
            n_estimators=args.n_estimators,
            max_depth=args.max_depth,
            random_state=args.seed,
            n_jobs=-1,
        )
        model.fit(X_train, y_train)

        y_pred = model.predict(X_test)
        y_score = model.predict_proba(X_test)[:, 1]
        mlflow.log_metric("accuracy", accuracy_score(y_test, y_pred))
        mlflow.log_metric("roc_auc", roc_auc_score(y_test, y_score))
        mlflow.log_metric("precision", precision_score(y_test, y_pred))
        mlflow.log_metric("recall", recall_score(y_test, y_pred))
        mlflow.log_metric("f1", f1_score(y_test, y_pred))

        with tempfile.TemporaryDirectory() as folder:
            fig, ax = plt.subplots(figsize=(5, 4.5))
            ConfusionMatrixDisplay.from_predictions(
                y_test, y_pred, display_labels=data.target_names, ax=ax
            )
            plt.savefig(os.path.join(folder, "confusion_matrix.png"))
            plt.close(fig)
            fig, ax = plt.subplots(figsize=(5, 4.5))
            RocCurveDisplay.from_predictions(y_test, y_score, ax=ax)
            plt.savefig(os.path.join(folder, "roc_curve.png"))
            plt.close(fig)
            order = model.feature_importances_.argsort()[-15:]
            fig, ax = plt.subplots(figsize=(7, 5.5))
            ax.barh(X_train.columns[order], model.feature_importances_[order])
            plt.savefig(os.path.join(folder, "feature_importance.png"))
            plt.close(fig)
            for name in ("confusion_matrix.png", "roc_curve.png", "feature_importance.png"):
                mlflow.log_artifact(os.path.join(folder, name), artifact_path="plots")
            report_path = os.path.join(folder, "classification_report.txt")
            with open(report_path, "w") as report:
                report.write(
                    classification_report(y_test, y_pred, target_names=data.target_names, digits=3)
                )
            mlflow.log_artifact(report_path)

        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=X_test.head(5),
            skops_trusted_types=["sklearn.tree._tree.Tree"],
        )
    print(f"Run {run.info.run_id}, model {model_info.model_uri}")
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri}


if __name__ == "__main__":
    main()
