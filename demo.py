"""Lesson 1: one MLflow run with params, metrics, tags, artifacts and a model.

A random forest learns to tell malignant from benign tumours in scikit-learn's
breast-cancer data (569 patients, 30 measurements each, bundled with
scikit-learn, so no download). Everything about the training goes into one
MLflow run: the settings (params), the scores (metrics), labels (tags), plots
and a report (artifacts), the data set (an input) and the model itself.

Run it from the repository root or any other folder:

    python demo.py
    python demo.py --n-estimators 300 --max-depth 5

then browse the run with the `mlflow ui` command it prints.
"""

# %%
# Settings
# --------
# Defaults for the command-line flags. Edit them here or pass flags; each
# run records the values it used as params, so runs stay comparable.
import argparse
import getpass

N_ESTIMATORS = 100
MAX_DEPTH = 8
TEST_SIZE = 0.25
SEED = 42

EXPERIMENT_NAME = "demo-mlflow-artifacts"
RUN_NAME = "random_forest_breast_cancer"
# Where scikit-learn's bundled copy of the data set comes from.
BREAST_CANCER_SOURCE = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def open_fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n-estimators",
        type=positive_int,
        default=N_ESTIMATORS,
        help=f"number of trees in the forest (default {N_ESTIMATORS})",
    )
    parser.add_argument(
        "--max-depth",
        type=positive_int,
        default=MAX_DEPTH,
        help=f"deepest a tree may grow (default {MAX_DEPTH})",
    )
    parser.add_argument(
        "--test-size",
        type=open_fraction,
        default=TEST_SIZE,
        help=f"share of rows held out for testing (default {TEST_SIZE})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"random seed for the split and the forest (default {SEED})",
    )
    parser.add_argument(
        "--owner",
        default=getpass.getuser(),
        help="who ran this, recorded as the 'owner' tag (default: your user name)",
    )
    return parser.parse_args(argv)


# %%
# 1. Data and model
# -----------------
# A held-out test set gives honest scores: the model never sees those rows
# while training. ``stratify`` keeps the share of malignant cases equal in
# both parts.
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def load_data(test_size, seed):
    data = load_breast_cancer(as_frame=True)
    features, target = data.data, data.target
    split = train_test_split(
        features, target, test_size=test_size, random_state=seed, stratify=target
    )
    return data, *split


# %%
# 2. Plots worth keeping
# ----------------------
# A metric is one number; plots show *where* a model goes wrong. They are
# stored next to the run as artifacts, so they never get separated from the
# settings that produced them.
import matplotlib

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay


def confusion_matrix_figure(y_true, y_pred, class_names):
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, display_labels=class_names, cmap="Blues", colorbar=False, ax=ax
    )
    ax.set_title("Confusion matrix (test set)")
    return fig


def roc_curve_figure(y_true, y_score):
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    RocCurveDisplay.from_predictions(
        y_true, y_score, name="random forest", ax=ax, plot_chance_level=True
    )
    # Class 1 is "benign" in this data set; say so instead of "Positive label: 1".
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curve on the test set (positive class: benign)")
    return fig


def feature_importance_figure(model, feature_names, top=15):
    order = model.feature_importances_.argsort()[-top:]
    fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    ax.barh([feature_names[i] for i in order], model.feature_importances_[order])
    ax.set_xlabel("Mean decrease in impurity")
    ax.set_title(f"Top {top} features by importance")
    return fig


# %%
# 3. The MLflow run
# -----------------
# Everything logged inside ``with mlflow.start_run()`` belongs to one run. If
# the block fails, MLflow marks the run FAILED instead of leaving it RUNNING.
from importlib.metadata import version

import mlflow
from mlflow.models import infer_signature
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

import workshop_store


def main(argv=None):
    args = parse_args(argv)
    data, X_train, X_test, y_train, y_test = load_data(args.test_size, args.seed)
    class_names = list(data.target_names)

    # An experiment groups runs of one task; the store decides where they live.
    experiment = workshop_store.use_experiment(EXPERIMENT_NAME)
    with mlflow.start_run(run_name=RUN_NAME) as run:
        # Params: the inputs you chose. One call with a dict, one round trip.
        mlflow.log_params(
            {
                "n_estimators": args.n_estimators,
                "max_depth": args.max_depth,
                "test_size": args.test_size,
                "seed": args.seed,
                "stratify": True,
            }
        )
        # Tags: free-form labels to search and filter runs by.
        mlflow.set_tags(
            {
                "model_type": "RandomForestClassifier",
                "dataset": "sklearn breast_cancer",
                "owner": args.owner,
            }
        )
        # The data set, recorded as the run's input: name, digest (a content
        # hash), schema and where it came from. The UI shows it under "Datasets".
        # The label is stored as its name: readable in the UI, and a text
        # column needs no "integer columns cannot hold missing values" caveat.
        training_table = X_train.assign(diagnosis=data.target_names[y_train])
        mlflow.log_input(
            mlflow.data.from_pandas(
                training_table,
                name="breast_cancer_train",
                targets="diagnosis",
                source=BREAST_CANCER_SOURCE,
            ),
            context="training",
        )

        # One thread (scikit-learn's default): on a few hundred rows, starting
        # threads costs more than it saves, and a served model would pay that
        # start-up on every request (BENCHMARKS.md measures it).
        model = RandomForestClassifier(
            n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=args.seed
        )
        model.fit(X_train, y_train)

        # Metrics: the outcomes, measured on rows the model never saw.
        # Precision, recall and f1 treat class 1 ("benign") as the positive class.
        y_pred = model.predict(X_test)
        y_score = model.predict_proba(X_test)[:, 1]
        metrics = {
            "accuracy": accuracy_score(y_test, y_pred),
            "roc_auc": roc_auc_score(y_test, y_score),
            "precision": precision_score(y_test, y_pred),
            "recall": recall_score(y_test, y_pred),
            "f1": f1_score(y_test, y_pred),
        }
        mlflow.log_metrics(metrics)

        # Artifacts: files. log_figure and log_text write straight into the
        # run's artifact folder, no temporary files of our own.
        for path, fig in {
            "plots/confusion_matrix.png": confusion_matrix_figure(y_test, y_pred, class_names),
            "plots/roc_curve.png": roc_curve_figure(y_test, y_score),
            "plots/feature_importance.png": feature_importance_figure(model, X_train.columns),
        }.items():
            mlflow.log_figure(fig, path)
            plt.close(fig)
        report = classification_report(y_test, y_pred, target_names=class_names, digits=3)
        mlflow.log_text(report, "classification_report.txt")

        # The model, as an MLflow Model: a folder with the serialized forest
        # (skops, a safe format, not pickle; the forest's Tree objects are
        # named as trusted), its signature (input columns and output type),
        # an input example and the exact packages needed to load it. Naming the
        # requirements saves MLflow seconds of guessing them.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=[
                f"{package}=={version(package)}" for package in ("mlflow", "scikit-learn", "skops")
            ],
        )

    # %%
    # 4. What to look at next
    # -----------------------
    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    for name, value in metrics.items():
        print(f"  {name:<10} {value:.3f}")
    print(f"Model URI: {model_info.model_uri}")
    print(f"Load it:   python load_model.py --model-uri {model_info.model_uri}")
    for line in workshop_store.where_to_look(run):
        print(line)
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri, "metrics": metrics}


if __name__ == "__main__":
    main()
