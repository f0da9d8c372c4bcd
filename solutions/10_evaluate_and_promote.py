"""Solution to exercise 10: move the alias only when the evidence says so.

The champion (``models:/wine_quality@champion``) and a challenger (your
newest wine run, registered as a version if it is not one yet) are each
evaluated by ``mlflow.models.evaluate`` on the champion's held-out wines, in
the experiment ``wine-quality-evaluation``. ``mlflow.validate_evaluation_results``
then checks the challenger's ``root_mean_squared_error`` against the
champion's: the alias moves only if it passes. The challenger's evaluation
run records the verdict in its tags ``candidate_version``,
``baseline_version``, ``alias`` and ``validation`` (passed or failed). From
the workshop's folder:

    python solutions/10_evaluate_and_promote.py
    python solutions/10_evaluate_and_promote.py --alias alice
"""

# %%
# Settings
# --------
# The challenger must beat the champion's RMSE by MIN_IMPROVEMENT quality
# points: a tie, or a gain within the noise, moves nothing.
import argparse
import getpass
import os

MODEL_NAME = "wine_quality"
ALIAS = "champion"
METRIC = "root_mean_squared_error"
MIN_IMPROVEMENT = 0.005
WINE_EXPERIMENT = "wine-quality-elasticnet"
USER = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--alias", default=ALIAS, help="the alias to move (yours on a server)")
    return parser.parse_args(argv)


# %%
# Where the runs go
# -----------------
# The lessons' store: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` at the
# workshop's root, the folder above this one. The registry is read first:
# without a champion there is nothing to compare, and nothing is created.
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this script lives in solutions/, one folder below the root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "wine-quality-evaluation"


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
# The champion and the challenger
# -------------------------------
# The alias names the champion's version. The challenger is your newest
# finished wine run; a search of the versions by ``run_id`` tells whether it
# is registered already.
from mlflow import MlflowClient

MINE = f"tags.mlflow.user = '{USER}' and attributes.status = 'FINISHED'"


def find_versions(alias):
    missing = f"There is no {MODEL_NAME}@{alias} yet: python solutions/05_register_champion.py"
    if TRACKING_URI == LOCAL_STORE and not (WORKSHOP / "mlflow.db").exists():
        raise SystemExit(missing)
    mlflow.set_tracking_uri(TRACKING_URI)
    client = MlflowClient()
    try:
        champion = client.get_model_version_by_alias(MODEL_NAME, alias)
    except mlflow.exceptions.MlflowException:  # no such registered model, or alias
        raise SystemExit(missing) from None
    wine = client.get_experiment_by_name(WINE_EXPERIMENT)
    newest_first = ["attributes.start_time DESC"]
    runs = client.search_runs([wine.experiment_id], MINE, order_by=newest_first, max_results=1)
    if not runs:
        raise SystemExit("You have no wine runs yet: python train_wine_elasticnet.py")
    newest = runs[0]
    found = client.search_model_versions(
        f"name = '{MODEL_NAME}' and run_id = '{newest.info.run_id}'"
    )
    if found:
        challenger = found[0]
    else:
        model_id = newest.outputs.model_outputs[0].model_id
        challenger = mlflow.register_model(f"models:/{model_id}", MODEL_NAME)
    if str(challenger.version) == str(champion.version):
        raise SystemExit(
            f"Your newest wine run is the champion's, version {champion.version}: "
            "train a challenger first (python train_wine_elasticnet.py --alpha ...)."
        )
    return client, champion, challenger


# %%
# The evaluation data
# -------------------
# The wines the champion's run held out (its ``test_size`` and ``seed``),
# read as the lesson reads them: every column a number, ``quality`` the target.
import pandas as pd
from sklearn.model_selection import train_test_split

WINE_CSV = WORKSHOP / "data" / "winequality-red.csv"


def held_out_wines(client, version):
    params = client.get_run(version.run_id).data.params
    wine = pd.read_csv(WINE_CSV).astype(float)
    split = train_test_split(
        wine, test_size=float(params["test_size"]), random_state=int(params["seed"])
    )
    return split[1]


# %%
# Evaluate both, validate, and only then move the alias
# -----------------------------------------------------
# ``mlflow.models.evaluate`` scores a model URI on a table and logs the metrics
# to the active run (SHAP explanations switched off: slow, and not needed
# here). ``validate_evaluation_results`` raises if the candidate misses a
# ``MetricThreshold``; MLflow 3 replaced ``evaluate(validation_thresholds=...)``
# with it.
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

THRESHOLDS = {METRIC: MetricThreshold(min_absolute_change=MIN_IMPROVEMENT, greater_is_better=False)}


def evaluate(version, wines):
    return mlflow.models.evaluate(
        f"models:/{MODEL_NAME}/{version.version}",
        wines,
        targets="quality",
        model_type="regressor",
        evaluator_config={"log_model_explainability": False},
    )


def main(argv=None):
    args = parse_args(argv)
    client, champion, challenger = find_versions(args.alias)
    wines = held_out_wines(client, champion)

    experiment = use_experiment()
    with mlflow.start_run(run_name=f"baseline_v{champion.version}"):
        baseline = evaluate(champion, wines)
    with mlflow.start_run(run_name=f"candidate_v{challenger.version}") as run:
        candidate = evaluate(challenger, wines)
        try:
            mlflow.validate_evaluation_results(THRESHOLDS, candidate, baseline)
            validation = "passed"
            client.set_registered_model_alias(MODEL_NAME, args.alias, challenger.version)
        except ModelValidationFailedException as failure:
            validation = "failed"
            print(failure.message)
        mlflow.set_tags(
            {
                "candidate_version": challenger.version,
                "baseline_version": champion.version,
                "alias": args.alias,
                "validation": validation,
            }
        )

    for name, result, version in [
        ("champion", baseline, champion),
        ("challenger", candidate, challenger),
    ]:
        print(f"  {name:<10}  version {version.version}  {METRIC} {result.metrics[METRIC]:.3f}")
    now = client.get_model_version_by_alias(MODEL_NAME, args.alias).version
    print(f"Validation {validation}: @{args.alias} is version {now}")
    print(f"Evaluations in experiment '{experiment.name}'")
    print("Check it:  python check_exercises.py --exercise 10")
    return {"validation": validation, "run_id": run.info.run_id}


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
