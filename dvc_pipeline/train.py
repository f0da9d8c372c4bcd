"""Stage 2 of the wine pipeline: fit an ElasticNet and, new, log it to MLflow.

DVC runs this stage when the prepared training rows, this script or its
params (``train`` and ``enable_mlflow`` in params.yaml) change. From this folder:

    dvc repro
    dvc exp run -S train.alpha=0.1

It still writes the model (``model/model.skops``) and its card
(``model/model_card.json``). With ``enable_mlflow: true`` it also logs a run in
the MLflow experiment ``wine-quality-dvc``: params, DVC's names as tags, the
training rows, and the model as a new version of ``wine_quality_dvc``.
"""

# %%
# Settings, from params.yaml
# --------------------------
# DVC records the params a stage declares in dvc.yaml and reruns the stage
# when they change; the stage reads them itself. A bad value stops it with one
# sentence, before anything is written or logged.
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
TRAINING_ROWS = HERE / "prepared" / "train.csv"
MODEL_DIR = HERE / "model"
TARGET = "quality"


def refuse(name, requirement, value):
    raise SystemExit(f"params.yaml: {name} must be {requirement}, got {value!r}.")


def read_params():
    params = yaml.safe_load((HERE / "params.yaml").read_text()) or {}
    train = params.get("train") or {}
    alpha = train.get("alpha")
    l1_ratio = train.get("l1_ratio")
    if type(alpha) not in (int, float) or not 0 < alpha < float("inf"):
        refuse("train.alpha", "a number above 0", alpha)
    if type(l1_ratio) not in (int, float) or not 0 <= l1_ratio <= 1:
        refuse("train.l1_ratio", "a number from 0 (ridge) to 1 (lasso)", l1_ratio)
    if type(params.get("enable_mlflow")) is not bool:
        refuse("enable_mlflow", "true or false", params.get("enable_mlflow"))
    return params


# %%
# The model
# ---------
# The penalty treats every coefficient alike, so the features are put on one
# scale first; the scaler is part of the saved model. skops saves it without
# pickle: loading a skops file cannot run code hidden in it.
import json

import pandas as pd
import skops.io
from sklearn.linear_model import ElasticNet
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def read_training_rows():
    if not TRAINING_ROWS.is_file():
        raise SystemExit(f"There is no file {TRAINING_ROWS}: `dvc repro` runs prepare first.")
    rows = pd.read_csv(TRAINING_ROWS)
    return rows.drop(columns=TARGET), rows[TARGET]


# %%
# Where the runs go (new)
# -----------------------
# The workshop's store, as for every lesson: ``MLFLOW_TRACKING_URI`` if set,
# else ``mlflow.db`` in the workshop's folder, the one above dvc_pipeline/.
# ``dvc exp run --temp`` and queued experiments run this file in a copy that
# DVC deletes afterwards; ``DVC_ROOT`` names the real dvc_pipeline/ even then.
import os
import sqlite3
from contextlib import closing

import mlflow
from filelock import FileLock

PIPELINE = Path(os.environ.get("DVC_ROOT", HERE)).resolve()
WORKSHOP = PIPELINE.parent  # the workshop's folder, above dvc_pipeline/
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "wine-quality-dvc"
REGISTERED_MODEL = "wine_quality_dvc"


def use_experiment():
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:  # a team server, say: whoever runs it set it up
        return mlflow.set_experiment(EXPERIMENT_NAME)
    # The first script to open a new store creates its tables, and MLflow does
    # that without a lock: scripts started at once would break the store. The
    # lock makes the others wait their turn, and then find the tables made.
    with FileLock(WORKSHOP / "mlflow.db.lock"):
        # Write-ahead logging, kept in the file once set: a reader never blocks a
        # writer, so a run stopped by Ctrl+C just as MLflow read from the store
        # can still be marked FAILED (without it, "database is locked").
        with closing(sqlite3.connect(WORKSHOP / "mlflow.db")) as store:
            store.execute("PRAGMA journal_mode=WAL")
        if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
            # Files go to mlruns/ beside the store, not into DVC's temporary copy of
            # the pipeline (MLflow's default is ./mlruns where the stage runs).
            location = (WORKSHOP / "mlruns" / EXPERIMENT_NAME).as_uri()
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        return mlflow.set_experiment(EXPERIMENT_NAME)


# %%
# What DVC tells a stage (new)
# ----------------------------
# DVC names the stage it runs in ``DVC_STAGE`` and, under ``dvc exp run``, the
# experiment in ``DVC_EXP_NAME`` and the commit it started from in
# ``DVC_EXP_BASELINE_REV``. As tags, they find an experiment's run. MLflow
# records the commit itself, as ``mlflow.source.git.commit``.
DVC_TAGS = {
    "dvc_stage": "DVC_STAGE",
    "dvc_exp_name": "DVC_EXP_NAME",
    "dvc_exp_baseline_rev": "DVC_EXP_BASELINE_REV",
}


# %%
# One run per training (new)
# --------------------------
# The params this stage read (and the split's, which made its rows), DVC's
# names as tags, the rows as a dataset, and the model with a signature, an
# input example and pinned requirements, registered: a version per training.
from importlib.metadata import version

from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature

WINE_DATA = LocalArtifactDatasetSource((WORKSHOP / "data" / "winequality-red.csv").as_posix())


def log_run(params, model, X, y):
    train = params["train"]
    prepare = params["prepare"]
    use_experiment()
    # An experiment's run is named after it, a plain ``dvc repro`` after its params.
    repro_name = f"repro_a{train['alpha']:g}_l{train['l1_ratio']:g}"
    run_name = os.environ.get("DVC_EXP_NAME", repro_name)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({**train, "test_size": prepare["test_size"], "seed": prepare["seed"]})
        dvc = {tag: os.environ[name] for tag, name in DVC_TAGS.items() if name in os.environ}
        mlflow.set_tags({"model_type": "ElasticNet", "dataset": "UCI wine quality (red)", **dvc})
        rows = X.assign(**{TARGET: y})
        dataset = mlflow.data.from_pandas(
            rows, name="winequality-red_training", targets=TARGET, source=WINE_DATA
        )
        mlflow.log_input(dataset, context="training")
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            input_example=X.head(5),
            serialization_format="skops",
            pip_requirements=[f"{p}=={version(p)}" for p in ("mlflow", "scikit-learn", "skops")],
            registered_model_name=REGISTERED_MODEL,
        )
    return run.info.run_id, f"models:/{REGISTERED_MODEL}/{model_info.registered_model_version}"


# %%
# Train, save, log
# ----------------
# The stage takes no flags: its settings are in params.yaml, where DVC sees
# them. The card is the project's own record; it now names the MLflow run, so
# that the evaluate stage adds its scores to the same run.
import argparse


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    params = read_params()
    X, y = read_training_rows()
    alpha = params["train"]["alpha"]
    l1_ratio = params["train"]["l1_ratio"]
    model = make_pipeline(StandardScaler(), ElasticNet(alpha=alpha, l1_ratio=l1_ratio)).fit(X, y)
    MODEL_DIR.mkdir(exist_ok=True)
    skops.io.dump(model, MODEL_DIR / "model.skops")
    print(f"train: ElasticNet(alpha={alpha:g}, l1_ratio={l1_ratio:g}) saved in model/")
    card = {"model_type": "ElasticNet", "alpha": alpha, "l1_ratio": l1_ratio}
    card["features"] = list(X.columns)
    card["training_rows"] = len(X)
    if params["enable_mlflow"]:
        run_id, model_uri = log_run(params, model, X, y)
        card["mlflow_run_id"] = run_id
        card["mlflow_model_uri"] = model_uri
        print(f"train: MLflow run {run_id}, model {model_uri}")
    (MODEL_DIR / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


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
