"""Solution to exercise 5: register your best wine model and give it an alias.

Your lowest-RMSE wine run's model becomes a version of the registered model
``wine_quality`` (unless a version from that run exists already), and the
alias ``champion`` points at it. On a team server the registered model is
shared: give your user name as the alias. From the workshop's folder:

    python solutions/05_register_champion.py
    python solutions/05_register_champion.py --alias alice
"""

# %%
# Settings
# --------
# The registered model's name and the alias. Runs are yours when MLflow
# recorded you as their user.
import argparse
import getpass
import os

MODEL_NAME = "wine_quality"
ALIAS = "champion"
EXPERIMENT_NAME = "wine-quality-elasticnet"
USER = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--alias", default=ALIAS, help="the alias (your user name on a server)")
    return parser.parse_args(argv)


# %%
# Where the runs are
# ------------------
# The lessons' store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the
# workshop's root, the folder above this one. Without a local store there is
# nothing to register, and the script says so.
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this script lives in solutions/, one folder below the root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
NO_RUNS_YET = "There are no wine runs yet: run `python train_wine_elasticnet.py` first."


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (WORKSHOP / "mlflow.db").exists():
        raise SystemExit(NO_RUNS_YET)
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:
        return MlflowClient()
    # A lesson started a moment ago may still be making this new store's tables,
    # holding mlflow.db.lock (its "Where the runs go" cell). MlflowClient() opens
    # the store and would make them too, at the same time, which breaks the
    # store for good: after the lock, it finds them made.
    with FileLock(WORKSHOP / "mlflow.db.lock"):
        return MlflowClient()


# %%
# The best run, its model, a version and the alias
# ------------------------------------------------
# In MLflow 3 a run's model is a *logged model* of its own (``models:/m-...``),
# listed in the run's outputs. Registering it makes the next version of
# ``wine_quality``; versions can be searched by the run they came from.
MINE = f"tags.mlflow.user = '{USER}' and attributes.status = 'FINISHED'"


def main(argv=None):
    args = parse_args(argv)
    client = use_store()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    ranked = []
    if experiment is not None:
        ids = [experiment.experiment_id]
        ranked = client.search_runs(ids, MINE, order_by=["metrics.rmse ASC"], max_results=1)
    if not ranked:
        raise SystemExit(NO_RUNS_YET)
    best = ranked[0]

    versions = client.search_model_versions(
        f"name = '{MODEL_NAME}' and run_id = '{best.info.run_id}'"
    )
    if versions:
        version = versions[0]
    else:
        model_id = best.outputs.model_outputs[0].model_id
        version = mlflow.register_model(f"models:/{model_id}", MODEL_NAME)
    client.set_registered_model_alias(MODEL_NAME, args.alias, version.version)

    rmse = best.data.metrics["rmse"]
    print(f"Run {best.info.run_id[:8]} ({best.info.run_name}, rmse {rmse:.3f})")
    print(f"  is version {version.version} of {MODEL_NAME}, alias @{args.alias}")
    print(f"Model URI: models:/{MODEL_NAME}@{args.alias}")
    print("Check it:  python check_exercises.py --exercise 5")
    return {"version": str(version.version), "run_id": best.info.run_id}


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
