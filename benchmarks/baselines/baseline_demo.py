"""demo.py's work the way common MLflow tutorials write it: one call per value, plots saved
to files and then logged, the default ``log_model`` (MLflow infers requirements and signature)."""

import argparse
import os
import tempfile

import matplotlib.pyplot as plt
import mlflow
from sklearn import metrics
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--n-estimators", type=int, default=100)
parser.add_argument("--max-depth", type=int, default=8)
args = parser.parse_args()

data = load_breast_cancer(as_frame=True)
table = data.data.assign(diagnosis=data.target_names[data.target])
train, test = train_test_split(table, test_size=0.25, random_state=42, stratify=table.diagnosis)
X_train, y_train = train.drop(columns="diagnosis"), train.diagnosis
X_test, y_test = test.drop(columns="diagnosis"), test.diagnosis

mlflow.set_experiment("demo-mlflow-artifacts")
with mlflow.start_run(run_name="random_forest_breast_cancer"):
    mlflow.log_param("n_estimators", args.n_estimators)
    mlflow.log_param("max_depth", args.max_depth)
    mlflow.log_param("test_size", 0.25)
    mlflow.log_param("seed", 42)
    mlflow.set_tag("model_type", "RandomForestClassifier")
    mlflow.set_tag("owner", "tutorial")
    mlflow.log_input(mlflow.data.from_pandas(train, targets="diagnosis"), context="training")
    mlflow.log_input(mlflow.data.from_pandas(test, targets="diagnosis"), context="evaluation")
    mlflow.log_table(test, artifact_file="held_out_rows.json")

    model = RandomForestClassifier(
        n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=42, n_jobs=-1
    )
    model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    benign = model.predict_proba(X_test)[:, 0]
    mlflow.log_metric("accuracy", metrics.accuracy_score(y_test, y_pred))
    mlflow.log_metric("roc_auc", metrics.roc_auc_score(y_test == "benign", benign))
    mlflow.log_metric("precision", metrics.precision_score(y_test, y_pred, pos_label="benign"))
    mlflow.log_metric("recall", metrics.recall_score(y_test, y_pred, pos_label="benign"))
    mlflow.log_metric("f1_score", metrics.f1_score(y_test, y_pred, pos_label="benign"))

    folder = tempfile.mkdtemp()
    metrics.ConfusionMatrixDisplay.from_predictions(y_test, y_pred)
    plt.savefig(os.path.join(folder, "confusion_matrix.png"))
    metrics.RocCurveDisplay.from_predictions(y_test, benign, pos_label="benign")
    plt.savefig(os.path.join(folder, "roc_curve.png"))
    plt.figure()
    plt.barh(X_train.columns, model.feature_importances_)
    plt.savefig(os.path.join(folder, "feature_importance.png"))
    mlflow.log_artifacts(folder, artifact_path="plots")
    mlflow.log_text(metrics.classification_report(y_test, y_pred), "classification_report.txt")

    mlflow.sklearn.log_model(
        model,
        name="model",
        input_example=X_test.head(5),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
