"""Lesson 3: a sweep of runs, compared and registered, with a champion alias.

A random forest learns the three iris species from four flower measurements,
once per configuration of a grid: one MLflow run each, all children of one
parent run, and each model a new version of the registered model
``iris_classifier``. The best version carries the alias ``champion``.

    python train_iris_sweep.py
    python train_iris_sweep.py --grid "10:2,300:4"
"""

# %%
# Settings
# --------
# One run per ``N_ESTIMATORS:MAX_DEPTH`` pair of the grid, simplest first: on a
# tie, the first (and older) one wins. ``--seed`` seeds the forests, never the split.
import argparse

GRID = "10:2,50:3,100:5,200:10"
TEST_SIZE = 0.3
SPLIT_SEED = 42
SEED = 42
MODEL_NAME = "iris_classifier"
CHAMPION_ALIAS = "champion"
DESCRIPTION = (
    "Random forests for the iris species, one version per sweep run; 'champion' is "
    "the highest test accuracy (on a tie, the older version keeps it)."
)


def parse_grid(text):
    """``"10:2,300:4"`` -> ``[(10, 2), (300, 4)]``; ValueError if a pair is not two numbers."""
    pairs = []
    for pair in text.split(","):
        n_estimators, _, max_depth = pair.partition(":")
        pairs.append((int(n_estimators), int(max_depth)))
    return pairs


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--grid", default=GRID, help="comma-separated N_ESTIMATORS:MAX_DEPTH")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the forests")
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    try:
        args.grid = parse_grid(args.grid)
    except ValueError:
        parser.error(f"--grid takes pairs of whole numbers like 10:2,300:4, got {args.grid!r}")
    if any(n_estimators < 1 or max_depth < 1 for n_estimators, max_depth in args.grid):
        parser.error("--grid: every number of trees and every depth must be at least 1")
    if len(set(args.grid)) < len(args.grid):
        parser.error("--grid lists the same pair twice")
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
EXPERIMENT_NAME = "iris_classification"


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
# The same 45 flowers (30 %, stratified) are held out in every sweep, so that
# accuracies from different sweeps compare. One flower is 1/45 of accuracy:
# ties happen.
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

SOURCE = "https://archive.ics.uci.edu/dataset/53/iris"


def load_data():
    data = load_iris(as_frame=True)
    rows = data.data.assign(species=data.target_names[data.target])
    return train_test_split(
        rows, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=rows["species"]
    )


# %%
# One child run per configuration
# -------------------------------
# ``nested=True`` makes the run a child of the active one (MLflow records the
# tag ``mlflow.parentRunId``). One ``log_model`` call with
# ``registered_model_name`` logs the model and registers it as the next
# version; its ``tags`` go onto that version as it is created.
from importlib.metadata import version

from mlflow.models import infer_signature
from sklearn import metrics as sk
from sklearn.ensemble import RandomForestClassifier


def score(y_test, y_pred):
    # Averages weighted by each species' share of the test flowers; a species
    # never predicted gets 0, not a warning.
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y_test, y_pred, average="weighted", zero_division=0
    )
    return {
        "accuracy": sk.accuracy_score(y_test, y_pred),
        "f1_score": f1,
        "precision": precision,
        "recall": recall,
    }


def train_and_log(n_estimators, max_depth, seed, training, held_out):
    X_train, y_train = training.drop(columns="species"), training["species"]
    X_test, y_test = held_out.drop(columns="species"), held_out["species"]
    run_name = f"rf_n{n_estimators}_d{max_depth}"
    with mlflow.start_run(run_name=run_name, nested=True) as run:
        mlflow.log_params({"n_estimators": n_estimators, "max_depth": max_depth, "seed": seed})
        mlflow.set_tags({"model_type": "RandomForestClassifier", "dataset": "sklearn iris"})
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            dataset = mlflow.data.from_pandas(
                rows, source=SOURCE, targets="species", name=f"iris_{context}"
            )
            mlflow.log_input(dataset, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")  # for load_model.py

        model = RandomForestClassifier(n_estimators, max_depth=max_depth, random_state=seed)
        model.fit(X_train, y_train)
        y_pred = model.predict(X_test)
        metrics = score(y_test, y_pred)
        mlflow.log_metrics(metrics)

        # Version tags: what the registry shows beside each version, and what
        # the champion rule below compares.
        tags = {
            "accuracy": f"{metrics['accuracy']:.4f}",
            "n_estimators": str(n_estimators),
            "max_depth": str(max_depth),
            "run_name": run_name,
        }
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")],
            registered_model_name=MODEL_NAME,
            tags=tags,
        )
    new_version = str(model_info.registered_model_version)
    print(f"  {run_name:<14} accuracy {metrics['accuracy']:.3f}  -> version {new_version}")
    return {"run_id": run.info.run_id, "version": new_version, "tags": tags, "metrics": metrics}


# %%
# The champion alias
# ------------------
# An alias names one version (aliases replace the deprecated stages), so
# ``models:/iris_classifier@champion`` always loads the best. The sweep's best
# challenges the current champion and must beat it: a tie keeps the older.
def crown_champion(client, best):
    """Point the alias at ``best`` if it beats the current champion; return (old, new)."""
    aliases = client.get_registered_model(MODEL_NAME).aliases
    if CHAMPION_ALIAS not in aliases:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, best["version"])
        return None, best["version"]
    old = str(aliases[CHAMPION_ALIAS])
    champion = client.get_model_version(MODEL_NAME, old)
    # A version without the tag (the alias moved by hand in the UI) never wins.
    if float(champion.tags.get("accuracy", "-1")) >= float(best["tags"]["accuracy"]):
        return old, old
    client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, best["version"])
    return old, best["version"]


# %%
# The sweep
# ---------
# The parent run holds what the runs share (the grid, the split) and the best
# score; the registered model gets a description that states the rule.
from datetime import datetime

from mlflow import MlflowClient


def main(argv=None):
    args = parse_args(argv)
    training, held_out = load_data()
    grid_text = ",".join(f"{n}:{d}" for n, d in args.grid)

    experiment = use_experiment()
    client = MlflowClient()
    with mlflow.start_run(run_name=f"sweep_{datetime.now():%Y%m%d_%H%M%S}") as parent:
        print(f"Sweep {parent.info.run_name} over the grid {grid_text}")
        mlflow.log_params({"grid": grid_text, "test_size": TEST_SIZE, "split_seed": SPLIT_SEED})
        results = []
        for n_estimators, max_depth in args.grid:
            results.append(train_and_log(n_estimators, max_depth, args.seed, training, held_out))
        # max() keeps the first of equals: the simpler, older one.
        best = max(results, key=lambda result: result["metrics"]["accuracy"])
        mlflow.log_metric("best_accuracy", best["metrics"]["accuracy"])
        client.update_registered_model(MODEL_NAME, description=DESCRIPTION)
        old, new = crown_champion(client, best)

    print(f"\nBest of this sweep: {best['tags']['run_name']}, version {best['version']}")
    if old == new:
        print(f"The champion stays version {new}: this sweep did not beat it.")
    elif old is None:
        print(f"The champion is now version {new}.")
    else:
        print(f"The champion is now version {new} (was {old}).")
    uri = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
    print(f"Champion URI: {uri}")
    print(f"Load it:      python load_model.py --model-uri {uri}")
    print(f"Compare:      python compare_runs.py --experiment {EXPERIMENT_NAME}")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:       {ui}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning"
    )
    return {"parent_run_id": parent.info.run_id, "runs": results, "champion": (old, new)}


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
