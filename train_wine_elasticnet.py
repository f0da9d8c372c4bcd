"""Lesson 2: one run per try, so that runs can be compared.

An ElasticNet regression predicts the quality score (3 to 8) that tasters gave
1,599 red wines from eleven lab measurements (acidity, sugar, alcohol, ...),
the UCI Wine Quality data in data/winequality-red.csv. Every invocation is one
MLflow run in the experiment ``wine-quality-elasticnet`` with its settings
(params ``alpha`` and ``l1_ratio``), its errors on held-out wines (metrics
``rmse``, ``r2``, ``mae``), the model and the data it read. Run it a few times
with other settings, then compare the runs in the UI or with compare_runs.py.

    python train_wine_elasticnet.py
    python train_wine_elasticnet.py --alpha 0.1 --l1-ratio 0.2
    python train_wine_elasticnet.py --data path/or/url/of/winequality-red.csv
"""

# %%
# Settings
# --------
# ``alpha`` is how strongly large coefficients are penalised (0 = not at all);
# ``l1_ratio`` mixes the two kinds of penalty: 0 is pure ridge (shrink every
# coefficient), 1 is pure lasso (drop whole features).
import argparse

ALPHA = 0.5
L1_RATIO = 0.5
TEST_SIZE = 0.25
SEED = 42


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--alpha", type=float, default=ALPHA, help="penalty, 0 = none")
    parser.add_argument("--l1-ratio", type=float, default=L1_RATIO, help="0 ridge, 1 lasso")
    parser.add_argument("--test-size", type=float, default=TEST_SIZE, help="share held out")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the train/test split")
    parser.add_argument(
        "--data", default=str(WINE_CSV), help="the red-wine CSV: a file or an http(s) URL"
    )
    args = parser.parse_args(argv)
    # Checked before any run starts: a bad value is one line, and nothing is logged.
    if not 0 <= args.alpha < float("inf"):  # also refuses nan
        parser.error("--alpha must be a number of at least 0")
    if not 0 <= args.l1_ratio <= 1:
        parser.error("--l1-ratio must be between 0 and 1")
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
EXPERIMENT_NAME = "wine-quality-elasticnet"


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
# The data, checked before anything is logged
# -------------------------------------------
# A missing or wrong file stops the script with one sentence before a run
# starts, so no half-filled run is left behind. ``sep=None`` lets pandas find
# the separator: UCI's own copy uses semicolons, ours commas ("utf-8-sig" also
# reads a file that a spreadsheet saved with a byte-order mark).
import csv

import numpy as np
import pandas as pd

WINE_CSV = HERE / "data" / "winequality-red.csv"
FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
TARGET = "quality"
MIN_ROWS = 40  # a 5 % or a 95 % hold-out still leaves 2 wines on each side


def read_wine(data):
    try:
        table = pd.read_csv(data, sep=None, engine="python", encoding="utf-8-sig")
    except FileNotFoundError:
        raise SystemExit(f"There is no file {data}: pass the red-wine CSV with --data.") from None
    except (OSError, ValueError, csv.Error) as error:  # a folder, offline, not a CSV, empty
        raise SystemExit(f"Could not read {data} as a CSV file ({error}).") from None
    missing = [name for name in [*FEATURES, TARGET] if name not in table.columns]
    if missing:
        raise SystemExit(f"{data} is not the red-wine data: it has no column '{missing[0]}'.")
    # Numbers throughout, the target too (a regression predicts fractional
    # scores); what is not a number becomes NaN here, and is refused below.
    wine = table[[*FEATURES, TARGET]].apply(pd.to_numeric, errors="coerce").astype(float)
    bad_rows = wine.index[~np.isfinite(wine).all(axis="columns")]
    if len(bad_rows):
        line = bad_rows[0] + 2  # counted from 1, after the header line
        raise SystemExit(f"{data} has a missing or non-numeric value on line {line}.")
    if len(wine) < MIN_ROWS:
        raise SystemExit(f"{data} has {len(wine)} wines, and the lesson needs at least {MIN_ROWS}.")
    return wine


# %%
# Where the data came from
# ------------------------
# MLflow records the origin of a dataset as its *source*: a URL, or a file on
# this computer (an absolute path, so it means the same from any folder).
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.sources import LocalArtifactDatasetSource


def dataset_source(data):
    if data.startswith(("http://", "https://")):
        return HTTPDatasetSource(data)
    return LocalArtifactDatasetSource(Path(data).resolve().as_posix())


# %%
# The model and its errors
# ------------------------
# The penalty treats every coefficient alike, so the features are put on one
# scale first; the scaler travels inside the logged model. The metrics are
# errors in quality points on wines the model never saw.
import warnings

from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_and_score(args, X_train, y_train, X_test, y_test):
    model = make_pipeline(StandardScaler(), ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio))
    with warnings.catch_warnings():
        # With alpha 0 (no penalty) scikit-learn suggests LinearRegression
        # instead; the fit is the same, so that one hint is not shown.
        warnings.filterwarnings("ignore", "With alpha=0", UserWarning)
        model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = {
        "rmse": root_mean_squared_error(y_test, y_pred),
        "r2": r2_score(y_test, y_pred),
        "mae": mean_absolute_error(y_test, y_pred),
    }
    return model, y_pred, metrics


# %%
# The MLflow run
# --------------
# One invocation, one run. The run name carries the settings, so a list of
# runs reads like a list of the experiments tried.
from importlib.metadata import version

from mlflow.models import infer_signature
from sklearn.model_selection import train_test_split


def main(argv=None):
    args = parse_args(argv)
    wine = read_wine(args.data)
    training, held_out = train_test_split(wine, test_size=args.test_size, random_state=args.seed)
    X_train, y_train = training[FEATURES], training[TARGET]
    X_test, y_test = held_out[FEATURES], held_out[TARGET]
    run_name = f"elasticnet_a{args.alpha:g}_l{args.l1_ratio:g}"

    experiment = use_experiment()
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(
            {
                "alpha": args.alpha,
                "l1_ratio": args.l1_ratio,
                "test_size": args.test_size,
                "seed": args.seed,
            }
        )
        mlflow.set_tags({"model_type": "ElasticNet", "dataset": "UCI wine quality (red)"})

        # The rows trained and scored on. A dataset's digest is a hash of its
        # content: two runs with the same digest used exactly the same wines.
        # The held-out rows are also kept as a table, for load_model.py.
        source = dataset_source(args.data)
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            dataset = mlflow.data.from_pandas(
                rows, source=source, targets=TARGET, name=f"winequality-red_{context}"
            )
            mlflow.log_input(dataset, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")

        model, y_pred, metrics = fit_and_score(args, X_train, y_train, X_test, y_test)
        mlflow.log_metrics(metrics)  # all of them in one call

        # The model, as in demo.py: skops, a signature, an input example and
        # pinned requirements (a scaler and a linear model need no trusted types).
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")],
        )

    print(f"Run {run.info.run_id} ({run_name}) in experiment '{experiment.name}'")
    for name, value in metrics.items():
        print(f"  {name:<4}  {value:.3f}")
    print(f"Model URI: {model_info.model_uri}")
    print(f"Load it:   python load_model.py --model-uri {model_info.model_uri}")
    print("Compare:   python compare_runs.py")
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
