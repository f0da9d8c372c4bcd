"""Lesson: load a logged or registered model back and predict with it.

A model that demo.py, train_wine_elasticnet.py or train_iris_sweep.py logged is
a folder in the artifact store, found again by a URI; its run also logged the
rows it held out from training, with their true answers. This script loads the
model twice (as a generic ``pyfunc`` model and as the scikit-learn estimator it
really is) and predicts those rows beside the truth.

    python load_model.py                       # the newest demo.py model
    python load_model.py --model-uri models:/iris_classifier@champion
"""

# %%
# Settings
# --------
# Without ``--model-uri`` the script picks the newest model that demo.py
# logged, so ``python demo.py`` followed by ``python load_model.py`` just works.
import argparse

URI_FORMS = (
    "models:/<model_id>, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>"
)
ROWS = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model-uri", help=f"{URI_FORMS}; None: the newest demo.py model")
    parser.add_argument("--rows", type=int, default=ROWS, help="held-out rows to show")
    args = parser.parse_args(argv)
    # Checked before the store is opened: a bad value is one line.
    if args.model_uri is not None and not args.model_uri.startswith(("models:/", "runs:/")):
        parser.error(f"--model-uri must be {URI_FORMS}")
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    return args


# %%
# Where the models are
# --------------------
# The same store the lessons log to: ``MLFLOW_TRACKING_URI``, else ``mlflow.db``
# beside this script. This lesson only reads: without a local store yet there
# is no model to load, and it says so rather than creating an empty store.
import os
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
LOCAL_STORE = "sqlite:///" + (HERE / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
DEMO_EXPERIMENT = "demo-mlflow-artifacts"
NO_MODEL_YET = "There is no demo.py model in the tracking store yet: run `python demo.py` first."


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (HERE / "mlflow.db").exists():
        raise SystemExit(NO_MODEL_YET)
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:
        return MlflowClient()
    # A lesson started a moment ago may still be making this new store's tables,
    # holding mlflow.db.lock (its "Where the runs go" cell). MlflowClient() opens
    # the store and would make them too, at the same time, which breaks the
    # store for good: after the lock, it finds them made.
    with FileLock(HERE / "mlflow.db.lock"):
        return MlflowClient()


# %%
# Which model?
# ------------
# Since MLflow 3 a logged model is an entity of its own, with an id, searched
# like runs. Only a READY one is whole: a model whose upload was interrupted
# stays PENDING. A run deleted in the UI is left out of searches (until
# ``mlflow gc`` removes it for good), and so is its model here; an experiment
# deleted there is one sentence.
# ``get_model_info`` reads a model's ``MLmodel`` file without loading it: its
# id, its run, its flavors and its signature.
from mlflow.entities import LoggedModelStatus


def newest_demo_model_uri(client):
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    if experiment is None:
        raise SystemExit(NO_MODEL_YET)
    if experiment.lifecycle_stage == "deleted":
        raise SystemExit(
            f"The experiment '{DEMO_EXPERIMENT}' was deleted: `mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}` brings it back."
        )
    not_deleted = {run.info.run_id for run in client.search_runs([experiment.experiment_id])}
    newest_first = [{"field_name": "creation_timestamp", "ascending": False}]
    models = client.search_logged_models([experiment.experiment_id], order_by=newest_first)
    ready = [
        model
        for model in models
        if model.status == LoggedModelStatus.READY and model.source_run_id in not_deleted
    ]
    if not ready:
        raise SystemExit(NO_MODEL_YET)
    return ready[0].model_uri


def model_info_and_run(client, uri):
    try:
        info = mlflow.models.get_model_info(uri)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise  # not a missing model: the main guard says what MLflow said
        reason = error.message.rstrip(".")
        raise SystemExit(f"Cannot find {uri}: {reason} ({what_exists(client, uri)}).") from None
    run = client.get_run(info.run_id)
    if run.info.lifecycle_stage == "deleted":
        raise SystemExit(
            f"The run {run.info.run_id} that logged {uri} was deleted: "
            f"`mlflow runs restore --run-id {run.info.run_id}` brings it back."
        )
    return info, run


# %%
# What exists, when a URI names nothing
# -------------------------------------
# A typo in a registered model's name, version or alias is easy to fix once
# the sentence names what does exist; the registry tells with three calls. A
# run's models and logged models by id are listed by compare_runs.py.
def what_exists(client, uri):
    name_and_version = uri.removeprefix("models:/")  # <name>/<version> or <name>@<alias>
    if uri.startswith("runs:/") or not ("/" in name_and_version or "@" in name_and_version):
        return "python compare_runs.py lists the runs and their models"
    name = name_and_version.partition("@")[0].partition("/")[0]
    try:
        aliases = client.get_registered_model(name).aliases
    except mlflow.exceptions.MlflowException:  # no registered model of that name
        names = [model.name for model in client.search_registered_models()]
        return f"registered models: {', '.join(names) or 'none'}"
    versions = client.search_model_versions(f"name = '{name}'")
    numbers = ", ".join(str(number) for number in sorted(int(v.version) for v in versions))
    alias_names = ", ".join(f"@{alias}" for alias in sorted(aliases)) or "none"
    return f"'{name}' has versions {numbers} and aliases {alias_names}"


# %%
# The rows its run held out
# -------------------------
# Predicting on training rows would flatter the model, so the training run
# logged its held-out rows with ``mlflow.log_table``: the model's input columns
# and the true answer. ``client.load_table`` reads them back from any experiment.
HELD_OUT_ROWS = "held_out_rows.json"


def held_out_rows(client, run):
    if HELD_OUT_ROWS not in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]:
        raise SystemExit(
            f"The run {run.info.run_id} that logged this model recorded no held-out rows "
            f"({HELD_OUT_ROWS}), so there is nothing to compare its predictions with."
        )
    return client.load_table(run.info.experiment_id, HELD_OUT_ROWS, [run.info.run_id])


# %%
# Predictions beside the truth
# ----------------------------
# A classifier is right or wrong (``predict_proba``: how sure it was), a
# regressor off by some amount. JSON turns whole numbers into integers, so the
# features get the types the model's signature names.
import pandas as pd
from sklearn.base import is_classifier


def compare(pyfunc_model, native_model, inputs, held_out):
    names = inputs.input_names()
    features = held_out[names].astype(dict(zip(names, inputs.numpy_types(), strict=True)))
    [truth_column] = held_out.columns.drop(names)
    table = pd.DataFrame({"predicted": pyfunc_model.predict(features)})
    table["true"] = held_out[truth_column]
    if is_classifier(native_model):
        table["probability"] = native_model.predict_proba(features).max(axis=1)
        correct = (table["predicted"] == table["true"]).sum()
        return table, truth_column, f"{correct} of {len(table)} held-out rows predicted correctly."
    table["error"] = table["predicted"] - table["true"]
    mae = table["error"].abs().mean()
    return table, truth_column, f"Mean absolute error on the {len(table)} held-out rows: {mae:.3f}"


# %%
# Load it twice and predict
# -------------------------
# ``mlflow.pyfunc.load_model`` gives every model, whatever library trained it,
# the same ``predict(DataFrame)``: what a server or a batch job uses.
# ``mlflow.sklearn.load_model`` gives the scikit-learn object itself. The
# registry's ``search_model_versions`` finds the versions made from this run.
def main(argv=None):
    args = parse_args(argv)
    client = use_store()
    uri = args.model_uri or newest_demo_model_uri(client)
    info, run = model_info_and_run(client, uri)
    versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    held_out = held_out_rows(client, run)
    print(f"Model {uri}")
    print(f"  logged model {info.model_id} ('{info.name}', flavors {', '.join(info.flavors)})")
    print(f"  logged by run {run.info.run_id} ({run.info.run_name})")
    for version in versions:
        print(f"  registered model '{version.name}' version {version.version}")

    pyfunc_model = mlflow.pyfunc.load_model(uri)
    native_model = mlflow.sklearn.load_model(uri)
    print(f"\nmlflow.pyfunc.load_model  -> {type(pyfunc_model).__name__} with a predict method")
    print(f"mlflow.sklearn.load_model -> {native_model!r}")
    table, truth, summary = compare(pyfunc_model, native_model, info.signature.inputs, held_out)
    shown = table.head(args.rows)
    print(f"\n{len(shown)} of the {len(table)} held-out rows ('true' is their {truth}):")
    print(shown.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(summary)
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:    {ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        "?workflowType=machine_learning"
    )
    return {"info": info, "held_out": held_out, "truth_column": truth, "table": table}


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
