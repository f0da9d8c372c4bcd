"""Lesson 1: one MLflow run with params, metrics, tags, artifacts and a model.

A random forest learns to tell malignant from benign tumours (scikit-learn's
breast-cancer data: 569 patients, 30 measurements each). One MLflow run holds
it all: the settings (params), the scores (metrics), labels (tags), plots and
a report (artifacts), the data it used (dataset inputs) and the model itself.

    python demo.py
    python demo.py --n-estimators 300 --max-depth 5
"""

# %%
# Settings
# --------
# Edit the defaults here, or pass flags (``python demo.py --help``). Every run
# records the values it used, so nothing you try is lost.
import argparse
import getpass

N_ESTIMATORS = 100
MAX_DEPTH = 8
TEST_SIZE = 0.25
SEED = 42
RUN_NAME = "random_forest_breast_cancer"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--n-estimators", type=int, default=N_ESTIMATORS, help="number of trees")
    parser.add_argument("--max-depth", type=int, default=MAX_DEPTH, help="deepest a tree grows")
    parser.add_argument("--test-size", type=float, default=TEST_SIZE, help="share held out")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the split and forest")
    parser.add_argument("--owner", default=getpass.getuser(), help="recorded as the owner tag")
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    if args.n_estimators < 1 or args.max_depth < 1:
        parser.error("--n-estimators and --max-depth must be at least 1")
    if not 0.05 <= args.test_size <= 0.95:
        parser.error("--test-size must be between 0.05 and 0.95")
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
EXPERIMENT_NAME = "demo-mlflow-artifacts"


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
# Held-out rows give honest scores: the model never trains on them.
# ``stratify`` keeps the share of malignant tumours the same in both parts.
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

SOURCE = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"


def load_data(test_size, seed):
    data = load_breast_cancer(as_frame=True)
    rows = data.data.assign(diagnosis=data.target_names[data.target])  # "malignant", "benign"
    return train_test_split(rows, test_size=test_size, random_state=seed, stratify=rows.diagnosis)


# %%
# Scores and plots
# ----------------
# Scores on the held-out rows, with "benign" as the positive class. A score is
# one number; a plot shows *where* the model goes wrong.
import matplotlib

matplotlib.use("Agg")  # draw into files, no window needed
import matplotlib.pyplot as plt
from sklearn import metrics as sk
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay


def score(model, X_test, y_test):
    y_pred = model.predict(X_test)
    benign = model.predict_proba(X_test)[:, list(model.classes_).index("benign")]
    scores = {
        "accuracy": sk.accuracy_score(y_test, y_pred),
        "roc_auc": sk.roc_auc_score(y_test == "benign", benign),
        "precision": sk.precision_score(y_test, y_pred, pos_label="benign"),
        "recall": sk.recall_score(y_test, y_pred, pos_label="benign"),
        "f1_score": sk.f1_score(y_test, y_pred, pos_label="benign"),
    }
    return y_pred, benign, scores


def draw_plots(model, X_test, y_test, y_pred, benign):
    confusion, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(y_test, y_pred, cmap="Blues", colorbar=False, ax=ax)
    ax.set_title("Confusion matrix (held-out rows)")

    roc, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    RocCurveDisplay.from_predictions(y_test, benign, pos_label="benign", name="forest", ax=ax)
    ax.set_title("ROC curve (held-out rows)")
    ax.set_xlabel("Malignant tumours called benign (share)")
    ax.set_ylabel("Benign tumours called benign (share)")

    importance, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    top = model.feature_importances_.argsort()[-15:]
    ax.barh(X_test.columns[top], model.feature_importances_[top])
    ax.set_title("The 15 measurements the forest relies on most")
    ax.set_xlabel("Importance (share of the total)")
    return {"confusion_matrix": confusion, "roc_curve": roc, "feature_importance": importance}


# %%
# The MLflow run
# --------------
# Everything logged inside ``with mlflow.start_run()`` belongs to one run. If
# the block fails or is interrupted, MLflow marks the run FAILED, not RUNNING.
from importlib.metadata import version

from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier


def main(argv=None):
    args = parse_args(argv)
    training, held_out = load_data(args.test_size, args.seed)
    X_train, y_train = training.drop(columns="diagnosis"), training["diagnosis"]
    X_test, y_test = held_out.drop(columns="diagnosis"), held_out["diagnosis"]

    experiment = use_experiment()
    with mlflow.start_run(run_name=RUN_NAME) as run:
        # Params are the inputs you chose; tags are labels to search and filter by.
        params = {"n_estimators": args.n_estimators, "max_depth": args.max_depth}
        mlflow.log_params({**params, "test_size": args.test_size, "seed": args.seed})
        mlflow.set_tags(
            {
                "model_type": "RandomForestClassifier",
                "dataset": "sklearn breast_cancer",
                "owner": args.owner,
            }
        )

        # Dataset inputs: which rows the run trained and scored on (name,
        # digest, schema, source), shown under "Datasets" in the UI. The
        # held-out rows are also kept as a table, for load_model.py.
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            dataset = mlflow.data.from_pandas(
                rows, source=SOURCE, targets="diagnosis", name=f"breast_cancer_{context}"
            )
            mlflow.log_input(dataset, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")

        model = RandomForestClassifier(**params, random_state=args.seed)
        model.fit(X_train, y_train)
        y_pred, benign, metrics = score(model, X_test, y_test)
        mlflow.log_metrics(metrics)

        # Artifacts: any file, kept with the run.
        for name, figure in draw_plots(model, X_test, y_test, y_pred, benign).items():
            mlflow.log_figure(figure, f"plots/{name}.png")
            plt.close(figure)
        report = sk.classification_report(y_test, y_pred, digits=3)
        mlflow.log_text(report, "classification_report.txt")

        # The model, saved with skops (safe to load, unlike pickle; the trees'
        # own type is named as trusted), with its signature (input columns and
        # output type) and an input example. Naming the exact requirements
        # saves MLflow the seconds it takes to work them out.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")],
        )

    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    for name, value in metrics.items():
        print(f"  {name:<9}  {value:.3f}")
    print(f"Model URI: {model_info.model_uri}")
    print(f"Load it:   python load_model.py --model-uri {model_info.model_uri}")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:    {ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri, "metrics": metrics}


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
