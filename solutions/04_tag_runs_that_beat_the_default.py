"""Solution to exercise 4: find the runs that beat the default with a filter string.

The *default run* is your newest wine run with the lesson's settings (alpha
0.5, l1_ratio 0.5). One search with the filter string ``metrics.rmse <
<its rmse>`` finds every run of yours that beats it, and each gets the tag
``beats_default=true``; a run that has the tag but no longer beats it loses
it. From the workshop's folder:

    python solutions/04_tag_runs_that_beat_the_default.py
"""

# %%
# Settings
# --------
# The tag to set. Runs are yours when MLflow recorded you as their user.
import argparse
import getpass
import os

TAG = "beats_default"
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
NO_DEFAULT_RUN = "There is no run with the default settings yet: python train_wine_elasticnet.py"


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (WORKSHOP / "mlflow.db").exists():
        raise SystemExit(NO_DEFAULT_RUN)
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
# Three filter strings
# --------------------
# Params are stored as text, so their values are quoted; metrics are numbers.
# The first search finds the default run (newest first), the second the runs
# that beat it, the third the runs that carry the tag already.
MINE = f"tags.mlflow.user = '{USER}' and attributes.status = 'FINISHED'"
DEFAULT_SETTINGS = "params.alpha = '0.5' and params.l1_ratio = '0.5'"


def main(argv=None):
    parse_args(argv)
    client = use_store()
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        raise SystemExit(NO_DEFAULT_RUN)
    ids = [experiment.experiment_id]
    newest_first = ["attributes.start_time DESC"]
    defaults = client.search_runs(
        ids, f"{MINE} and {DEFAULT_SETTINGS}", order_by=newest_first, max_results=1
    )
    if not defaults:
        raise SystemExit(NO_DEFAULT_RUN)
    default_rmse = defaults[0].data.metrics["rmse"]

    beats = f"{MINE} and metrics.rmse < {default_rmse!r}"
    print(f"Filter: {beats}")
    winners = client.search_runs(ids, beats, order_by=["metrics.rmse ASC"])
    for run in winners:
        client.set_tag(run.info.run_id, TAG, "true")
        print(
            f"  {run.info.run_id[:8]}  {run.info.run_name:<22} rmse {run.data.metrics['rmse']:.3f}"
        )

    # A tag stays until it is deleted: take it off runs that no longer beat the default.
    winner_ids = {run.info.run_id for run in winners}
    for run in client.search_runs(ids, f"{MINE} and tags.{TAG} = 'true'"):
        if run.info.run_id not in winner_ids:
            client.delete_tag(run.info.run_id, TAG)
            print(f"Took {TAG}=true off run {run.info.run_id[:8]} ({run.info.run_name})")

    print(
        f"Tagged {TAG}=true: {len(winners)} of your runs beat the default's rmse {default_rmse:.3f}"
    )
    print("Check it:  python check_exercises.py --exercise 4")
    return {"default_rmse": default_rmse, "run_ids": sorted(winner_ids)}


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
