"""Solution to exercise 6: load the champion by its alias and score held-out wines.

``models:/wine_quality@champion`` names whichever version the alias points
at. The script asks the registry which version that is and which run made
it, splits the wine data as that run did (its ``test_size`` and ``seed``
params), predicts the held-out wines, and records the result as a run in
the experiment ``wine-quality-scoring``: params ``model_uri`` and
``model_version``, metric ``holdout_rmse``. It matches the run's own
``rmse``: the same model on the same wines. From the workshop's folder:

    python solutions/06_score_champion.py
    python solutions/06_score_champion.py --alias alice
"""

# %%
# Settings
# --------
# The registered model and the alias to load (your user name on a server).
import argparse

MODEL_NAME = "wine_quality"
ALIAS = "champion"
RUN_NAME = "score_champion"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--alias", default=ALIAS, help="the alias to load")
    return parser.parse_args(argv)


# %%
# Where the runs go
# -----------------
# The lessons' store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the
# workshop's root, the folder above this one. The registry is read first:
# without a champion there is nothing to score, and nothing is created.
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this script lives in solutions/, one folder below the root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "wine-quality-scoring"


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
            # Files go to mlruns/ beside the store, whatever folder the script
            # was started in (MLflow's default is ./mlruns there).
            location = (WORKSHOP / "mlruns" / EXPERIMENT_NAME).as_uri()
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        return mlflow.set_experiment(EXPERIMENT_NAME)


# %%
# Which version, and which wines it never saw
# -------------------------------------------
# The registry resolves the alias to a version, and the version knows the run
# that made it. That run's params give the split, so the held-out wines here
# are the ones its ``rmse`` was computed on.
import pandas as pd
from mlflow import MlflowClient
from sklearn.model_selection import train_test_split

WINE_CSV = WORKSHOP / "data" / "winequality-red.csv"
TARGET = "quality"


def find_version(alias):
    missing = f"There is no {MODEL_NAME}@{alias} yet: python solutions/05_register_champion.py"
    if TRACKING_URI == LOCAL_STORE and not (WORKSHOP / "mlflow.db").exists():
        raise SystemExit(missing)
    mlflow.set_tracking_uri(TRACKING_URI)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException:  # no such registered model, or alias
        raise SystemExit(missing) from None
    return version, client.get_run(version.run_id)


def held_out_wines(source_run):
    wine = pd.read_csv(WINE_CSV).astype(float)  # the lesson reads every column as a number
    test_size = float(source_run.data.params["test_size"])
    seed = int(source_run.data.params["seed"])
    _, held_out = train_test_split(wine, test_size=test_size, random_state=seed)
    return held_out


# %%
# Load by alias, predict, and record the score
# --------------------------------------------
# ``pyfunc.load_model`` loads any flavour behind one ``predict``; the model's
# signature names the columns it reads.
from sklearn.metrics import root_mean_squared_error


def main(argv=None):
    args = parse_args(argv)
    model_uri = f"models:/{MODEL_NAME}@{args.alias}"
    version, source_run = find_version(args.alias)
    held_out = held_out_wines(source_run)

    model = mlflow.pyfunc.load_model(model_uri)
    columns = model.metadata.get_input_schema().input_names()
    holdout_rmse = root_mean_squared_error(held_out[TARGET], model.predict(held_out[columns]))

    experiment = use_experiment()
    with mlflow.start_run(run_name=RUN_NAME) as run:
        mlflow.log_params({"model_uri": model_uri, "model_version": version.version})
        mlflow.log_metric("holdout_rmse", holdout_rmse)

    print(f"{model_uri} is version {version.version}, from run {version.run_id[:8]}")
    print(f"  holdout_rmse  {holdout_rmse:.3f} on {len(held_out)} held-out wines")
    print(f"  its run's rmse {source_run.data.metrics['rmse']:.3f}")
    print(f"Run {run.info.run_id} ({RUN_NAME}) in experiment '{experiment.name}'")
    print("Check it:  python check_exercises.py --exercise 6")
    return {"run_id": run.info.run_id, "version": version.version, "holdout_rmse": holdout_rmse}


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
