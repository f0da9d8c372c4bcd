"""Lesson: load a logged or registered model back and predict with it.

A model logged by demo.py, train_wine_elasticnet.py or a sweep is a folder in
the artifact store that MLflow can find again by a URI. This script resolves
any of the URIs a participant will meet, loads the model twice (once as a
generic ``pyfunc`` model, once as the scikit-learn estimator it really is),
and predicts on rows the model never saw during training, beside the true
answers.

    python load_model.py                       # the newest demo.py model
    python load_model.py --model-uri models:/m-<model_id>
    python load_model.py --model-uri runs:/<run_id>/model
    python load_model.py --model-uri models:/<registered name>/<version>
    python load_model.py --model-uri models:/<registered name>@<alias>
"""

# %%
# Settings
# --------
# Without ``--model-uri`` the script picks the newest model that demo.py
# logged, so `python demo.py` followed by `python load_model.py` just works.
import argparse

DEMO_EXPERIMENT = "demo-mlflow-artifacts"
ROWS = 5
URI_FORMS = (
    "models:/<model_id>, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>"
)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def model_uri(text):
    scheme, _, rest = text.partition(":/")
    if scheme not in ("models", "runs") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(f"expected {URI_FORMS}, got {text!r}")
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-uri",
        type=model_uri,
        help=f"the model to load: {URI_FORMS} (default: the newest demo.py model)",
    )
    parser.add_argument(
        "--rows",
        type=positive_int,
        default=ROWS,
        help=f"how many held-out rows to predict (default {ROWS})",
    )
    parser.add_argument(
        "--data",
        metavar="PATH_OR_URL",
        help="for a wine model: the red-wine CSV (default: the file its run recorded, "
        "else the copy train_wine_elasticnet.py keeps in .data/)",
    )
    return parser.parse_args(argv)


# %%
# 1. Which model?
# ---------------
# Since MLflow 3 a logged model is an entity of its own, with an id
# (``models:/m-...``), and it lives under its experiment. The client can
# search them like runs, newest first.
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus

NO_MODEL_YET = "There is no demo.py model in the tracking store yet: run `python demo.py` first."


def newest_demo_model_uri(client):
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    if experiment is None:
        raise SystemExit(NO_MODEL_YET)
    models = client.search_logged_models(
        [experiment.experiment_id],
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
    )
    # A model whose upload was interrupted stays PENDING or FAILED: skip it.
    ready = [model for model in models if model.status == LoggedModelStatus.READY]
    if not ready:
        raise SystemExit(NO_MODEL_YET)
    return ready[0].model_uri


# %%
# 2. What the URI points at
# -------------------------
# ``get_model_info`` reads the model's ``MLmodel`` file without loading the
# model: its flavors, its signature (input columns, output type), its model
# id and the run that logged it. A registry URI (``models:/<name>/<version>``,
# ``models:/<name>@<alias>``) is first looked up in the model registry, which
# maps a version to a logged model.
import mlflow
from mlflow.exceptions import MlflowException

import workshop_store


def describe_model(client, uri):
    try:
        info = mlflow.models.get_model_info(uri)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise SystemExit(workshop_store.unreachable_message(uri, error)) from None
        raise SystemExit(
            f"Cannot find {uri}: {error.message.rstrip('.')}{hint(client, uri)}."
        ) from None
    return info


def hint(client, uri):
    """What does exist, so the participant can fix a typo."""
    scheme, _, rest = uri.partition(":/")
    rest = rest.strip("/")
    try:
        if scheme == "runs":
            run_id = rest.split("/")[0]
            models = client.search_logged_models(
                [client.get_run(run_id).info.experiment_id],
                filter_string=f"source_run_id = '{run_id}'",
            )
            names = ", ".join(f"runs:/{run_id}/{model.name}" for model in models)
            return f" (this run's models: {names or 'none'})"
        if rest.startswith("m-") and "/" not in rest:
            return " (python compare_runs.py shows the runs and their models)"
        name = rest.split("@")[0].split("/")[0]
        registered = client.get_registered_model(name)
        versions = client.search_model_versions(f"name = '{name}'")
        aliases = ", ".join(f"@{alias}" for alias in sorted(registered.aliases)) or "none"
        numbers = ", ".join(str(n) for n in sorted(int(v.version) for v in versions)) or "none"
        return f" ('{name}' has versions {numbers} and aliases {aliases})"
    except MlflowException:
        names = [model.name for model in client.search_registered_models()]
        if scheme == "models" and not rest.startswith("m-"):
            return f" (registered models: {', '.join(names) or 'none'})"
        return ""


# %%
# 3. Which rows did the model never see?
# --------------------------------------
# Predicting on training rows would flatter the model. The rule here:
# - which data: the model's signature names its input columns, and those
#   tell the workshop's data sets apart (30 breast-cancer measurements, 4 iris
#   measurements, 11 wine measurements). A model logged from a bare array has
#   no column names; then the number of columns decides.
# - which rows: the training script's split, repeated with the params its run
#   recorded (``test_size`` or ``test_samples``; ``split_seed``, ``seed`` or
#   ``random_state``; ``stratify``, else stratified for classifiers), gives
#   back exactly the rows it held out. A sweep's child run inherits these from
#   its parent run.
import json
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import train_test_split

import train_wine_elasticnet

FEATURES = {
    "breast cancer": list(load_breast_cancer().feature_names),
    "iris": list(load_iris().feature_names),
    "wine": train_wine_elasticnet.FEATURES,
}


def normalized(name):
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def identify_data(signature):
    """The data set the model was trained on, and its input column names (None: unnamed)."""
    inputs = signature.inputs if signature else None
    if inputs is not None and inputs.has_input_names():
        columns = inputs.input_names()
        for dataset, features in FEATURES.items():
            if sorted(map(normalized, columns)) == sorted(map(normalized, features)):
                return dataset, columns
    elif inputs is not None:  # a tensor signature: only its width is known
        width = inputs.inputs[0].shape[-1]
        for dataset, features in FEATURES.items():
            if len(features) == width:
                return dataset, None
    return None, None


def load_features_and_target(dataset, data_source, columns):
    """Features (named and ordered as the signature wants), target, class names."""
    if dataset == "wine":
        wine = train_wine_elasticnet.load_wine_data(data_source)
        features = wine[train_wine_elasticnet.FEATURES]
        target, class_names = wine[train_wine_elasticnet.TARGET], None
    else:
        bunch = (load_breast_cancer if dataset == "breast cancer" else load_iris)(as_frame=True)
        features, target, class_names = bunch.data, bunch.target, list(bunch.target_names)
    if columns:
        by_key = {normalized(name): name for name in columns}
        features = features.rename(columns=lambda name: by_key[normalized(name)])[columns]
    return features, target, class_names


def recorded_data_source(run):
    """The file a wine run read, if its dataset input names a local file that still exists."""
    for dataset_input in run.inputs.dataset_inputs if run else []:
        source = json.loads(dataset_input.dataset.source or "{}")
        path = source.get("uri") or source.get("path")
        if path and Path(path).is_file():
            return path
    return None


def split_settings(params, is_classifier):
    """test_size, seed and stratify from a run's params; None when the run did not record them."""
    if "test_size" in params:
        test_size = float(params["test_size"])
    elif "test_samples" in params:
        test_size = int(params["test_samples"])  # a count of rows splits the same way
    else:
        return None
    seed = params.get("split_seed", params.get("seed", params.get("random_state")))
    if seed is None:
        return None
    # Not recorded: the workshop's classifiers split stratified, its regression does not.
    stratify = params.get("stratify", str(is_classifier)) == "True"
    return {"test_size": test_size, "seed": int(seed), "stratify": stratify}


def held_out_rows(features, target, split):
    _, X_test, _, y_test = train_test_split(
        features,
        target,
        test_size=split["test_size"],
        random_state=split["seed"],
        stratify=target if split["stratify"] else None,
    )
    return X_test, y_test


def label(value, class_names):
    """A class number as its name (0 -> 'malignant'); anything else as it is."""
    try:
        number = float(value)
    except ValueError:  # already a name
        return str(value)
    if number.is_integer() and 0 <= number < len(class_names):
        return class_names[int(number)]
    return str(value)


# %%
# 4. Load it twice and predict
# ----------------------------
# ``mlflow.pyfunc.load_model`` gives every model the same interface, a
# ``predict`` that takes a DataFrame: what a server or a batch job uses,
# whatever library trained the model. ``mlflow.sklearn.load_model`` gives the
# scikit-learn object itself, with everything scikit-learn offers (its
# settings, ``predict_proba``, ``feature_importances_``).
import mlflow.sklearn
import numpy as np


def main(argv=None):
    args = parse_args(argv)
    if workshop_store.is_local() and not (workshop_store.REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit(NO_MODEL_YET)
    uri = workshop_store.connect()
    client = MlflowClient(uri)
    try:
        chosen_uri = args.model_uri or newest_demo_model_uri(client)
    except MlflowException as error:
        raise SystemExit(workshop_store.unreachable_message(uri, error)) from None

    info = describe_model(client, chosen_uri)
    run = client.get_run(info.run_id) if info.run_id else None
    print(f"Model {chosen_uri}")
    print(f"  logged model {info.model_id} ('{info.name}', flavors {', '.join(info.flavors)})")
    if run:
        print(f"  logged by run {run.info.run_id} ({run.info.run_name})")
    if chosen_uri.startswith("models:/") and not chosen_uri.startswith("models:/m-"):
        name, _, version = chosen_uri.removeprefix("models:/").partition("/")
        if "@" in name:  # models:/<name>@<alias>: the alias points at one version
            name, alias = name.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        print(f"  registered model '{name}' version {version}")

    dataset, columns = identify_data(info.signature)
    if dataset is None:
        raise SystemExit(
            f"{chosen_uri} expects inputs {info.signature.inputs if info.signature else '(none)'}, "
            "which match none of the workshop's data sets (breast cancer, iris, wine), "
            "so there are no held-out rows to try it on."
        )
    # A sweep records what its runs share (the split) once, on the parent run.
    params = run.data.params if run else info.params or {}
    parent_id = run.data.tags.get("mlflow.parentRunId") if run else None
    if parent_id:
        params = {**client.get_run(parent_id).data.params, **params}
    features, target, class_names = load_features_and_target(
        dataset, args.data or recorded_data_source(run), columns
    )
    split = split_settings(params, class_names is not None)
    print(f"  trained on the {dataset} data ({features.shape[1]} input columns)")
    if split:
        print(
            "  held-out rows: the split its run recorded, "
            + ", ".join(f"{key}={value}" for key, value in split.items())
        )
    else:
        print("  Its run records no test_size and seed, so these rows may include training rows.")
        split = {"test_size": 0.25, "seed": 42, "stratify": False}
    X_test, y_test = held_out_rows(features, target, split)
    rows, truth = X_test.head(args.rows), y_test.head(args.rows)
    # A model logged from a bare array (no column names) is fed a bare array.
    model_input = rows if columns else rows.to_numpy()

    pyfunc_model = mlflow.pyfunc.load_model(chosen_uri)
    predictions = np.asarray(pyfunc_model.predict(model_input))
    print(f"\nmlflow.pyfunc.load_model  -> {type(pyfunc_model).__name__} with a predict method")
    native_model = None
    if "sklearn" in info.flavors:
        native_model = mlflow.sklearn.load_model(chosen_uri)
        print(f"mlflow.sklearn.load_model -> {native_model!r}")

    # %%
    # 5. Predictions beside the truth
    # -------------------------------
    table = pd.DataFrame({"row": rows.index})
    if class_names is not None:
        table["predicted"] = [label(p, class_names) for p in predictions]
        table["true"] = [label(t, class_names) for t in truth]
        if native_model is not None and hasattr(native_model, "predict_proba"):
            table["probability"] = native_model.predict_proba(model_input).max(axis=1)
        correct = int((table["predicted"] == table["true"]).sum())
        summary = f"{correct} of {len(rows)} held-out rows predicted correctly."
    else:
        table["predicted"] = predictions
        table["true"] = truth.to_numpy()
        table["error"] = predictions - truth.to_numpy()
        summary = f"Mean absolute error on these rows: {np.abs(table['error']).mean():.3f}"
    print(f"\nPredictions on {len(rows)} held-out rows (row = row number in the data set):")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    print(summary)
    for line in workshop_store.where_to_look(run) if run else []:
        print(line)
    return {
        "model_uri": chosen_uri,
        "model_id": info.model_id,
        "run_id": info.run_id,
        "dataset": dataset,
        "rows": list(rows.index),
        "predictions": predictions,
        "true": truth.to_numpy(),
        "native_model": native_model,
    }


if __name__ == "__main__":
    main()
