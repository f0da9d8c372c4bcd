"""Solution to exercise 3: tag your lowest-RMSE wine run ``best=true``.

After five or more runs of train_wine_elasticnet.py, one search ranks your
finished wine runs by ``rmse`` and the first gets the tag ``best=true``; a
run that carried the tag before and is no longer the lowest loses it. From
the workshop's folder:

    python solutions/03_tag_best_run.py
"""

# %%
# Settings
# --------
# The tag to set. Runs are yours when MLflow recorded you as their user.
import argparse
import getpass
import os

TAG = "best"
EXPERIMENT_NAME = "wine-quality-elasticnet"
USER = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    return parser.parse_args(argv)


# %%
# Where the runs are
# ------------------
# The lessons' store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the
# workshop's root, the folder above this one. This script only reads and tags:
# without a local store there is nothing to tag, and it says so.
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
# The lowest RMSE, found by a search
# ----------------------------------
# The filter keeps your finished runs; ``order_by`` puts the lowest ``rmse``
# first, so one result is enough.
MINE = f"tags.mlflow.user = '{USER}' and attributes.status = 'FINISHED'"


def main(argv=None):
    parse_args(argv)
    client = use_store()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        raise SystemExit(NO_RUNS_YET)
    ids = [experiment.experiment_id]
    ranked = client.search_runs(ids, MINE, order_by=["metrics.rmse ASC"], max_results=1)
    if not ranked:
        raise SystemExit(NO_RUNS_YET)
    best = ranked[0]
    client.set_tag(best.info.run_id, TAG, "true")

    # A tag stays until it is deleted: take it off any other run that had it.
    for run in client.search_runs(ids, f"{MINE} and tags.{TAG} = 'true'"):
        if run.info.run_id != best.info.run_id:
            client.delete_tag(run.info.run_id, TAG)
            print(f"Took {TAG}=true off run {run.info.run_id[:8]} ({run.info.run_name})")

    rmse = best.data.metrics["rmse"]
    print(f"Tagged {TAG}=true: run {best.info.run_id[:8]} ({best.info.run_name}), rmse {rmse:.3f}")
    print("Check it:  python check_exercises.py --exercise 3")
    return {"run_id": best.info.run_id, "rmse": rmse}


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
