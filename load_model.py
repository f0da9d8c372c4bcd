"""Lesson: load a logged or registered model back and predict with it.

A model that demo.py, train_wine_elasticnet.py or train_iris_sweep.py logged is a folder
in the artifact store, found again by a URI; its run also logged the rows it held out from
training, with their true answers. This script loads the model twice (as a generic ``pyfunc``
model and as the scikit-learn estimator it really is) and predicts those rows beside the truth.

    python load_model.py                       # the newest demo.py model
    python load_model.py --model-uri models:/iris_classifier@champion
"""

# %%
# Settings
# --------
# Without ``--model-uri`` the script picks the newest model that demo.py
# logged, so `python demo.py` followed by `python load_model.py` just works.
import plumbing

DEMO_EXPERIMENT = "demo-mlflow-artifacts"
ROWS = 5
NO_MODEL_YET = "There is no demo.py model in the tracking store yet: run `python demo.py` first."


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--model-uri", type=plumbing.model_uri, help=f"{plumbing.URI_FORMS}; None: newest demo")
    add("--rows", type=plumbing.positive_int, default=ROWS, help="held-out rows to show")
    return parser.parse_args(argv)


# %%
# 1. Which model?
# ---------------
# Since MLflow 3 a logged model is an entity of its own, with an id, searched like runs (only
# READY ones of runs not deleted: an interrupted upload is FAILED). ``get_model_info`` reads
# a model's ``MLmodel`` file without loading it: id, run, flavors, signature. A registry URI
# maps a version or alias to a model; ``search_model_versions`` finds the versions of its run.
import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException


def newest_demo_model_uri(client):
    experiment = client.get_experiment_by_name(DEMO_EXPERIMENT)
    if experiment is None:
        raise SystemExit(NO_MODEL_YET)
    newest_first = [{"field_name": "creation_timestamp", "ascending": False}]
    models = client.search_logged_models([experiment.experiment_id], order_by=newest_first)
    runs = {run.info.run_id for run in client.search_runs([experiment.experiment_id])}
    ready = [m for m in models if m.status == LoggedModelStatus.READY and m.source_run_id in runs]
    if not ready:
        raise SystemExit(NO_MODEL_YET)
    return ready[0].model_uri


def model_info_and_run(client, uri):
    try:
        info = mlflow.models.get_model_info(uri)
        return info, client.get_run(info.run_id)  # the run is gone if `mlflow gc` removed it
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise  # not a missing model: main says the store could not be used
        reason = error.message.rstrip(".") + plumbing.what_exists(client, uri)
        raise SystemExit(f"Cannot find {uri}: {reason}.") from None


# %%
# 2. The rows its run held out
# ----------------------------
# Predicting on training rows would flatter the model, so the training run logged its
# held-out rows with ``mlflow.log_table``: the model's input columns and the true answer.
HELD_OUT_ROWS = "held_out_rows.json"


def held_out_rows(client, run):
    if HELD_OUT_ROWS not in [artifact.path for artifact in client.list_artifacts(run.info.run_id)]:
        raise SystemExit(
            f"The run {run.info.run_id} that logged this model recorded no held-out rows "
            f"({HELD_OUT_ROWS}), so there is nothing to compare its predictions with."
        )
    # mlflow.load_table reads from the active experiment only; the client from any.
    return client.load_table(run.info.experiment_id, HELD_OUT_ROWS, [run.info.run_id])


# %%
# 3. Predictions beside the truth
# -------------------------------
# A classifier is right or wrong (``predict_proba``: how sure it was), a regressor off by some
# amount. JSON turns whole numbers into integers, so the features get the signature's types.
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
# 4. Load it twice and predict
# ----------------------------
# ``mlflow.pyfunc.load_model`` gives every model, whatever library trained it, the same
# ``predict(DataFrame)``: what a server or a batch job uses. ``mlflow.sklearn.load_model``
# gives the scikit-learn object itself.
def main(argv=None):
    args = parse_args(argv)
    store = plumbing.connect(missing_store_message=NO_MODEL_YET)
    client = MlflowClient(store)
    try:
        uri = args.model_uri or newest_demo_model_uri(client)
        info, run = model_info_and_run(client, uri)
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        held_out = held_out_rows(client, run)
    except MlflowException as error:
        raise SystemExit(plumbing.unreachable_message(store, error)) from None
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
    print("\n".join(plumbing.where_to_look(run)))
    return {"info": info, "held_out": held_out, "truth_column": truth, "table": table}


if __name__ == "__main__":
    main()
