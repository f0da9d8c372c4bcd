"""Check your exercises: what the tracking store says you have done.

Every exercise in EXERCISES.md leaves facts in the tracking store: runs with
params, metrics and tags, model versions, aliases. This script reads them back
with ``MlflowClient`` searches and says, for each exercise, done or the one
thing still missing. It only reads: it logs nothing. On a team server,
``--everyone`` prints the instructor's table, a row per participant.

    python check_exercises.py
    python check_exercises.py --exercise 3
    python check_exercises.py --everyone
"""

# %%
# Settings
# --------
# All eleven exercises or one of them; your own progress or everyone's.
import argparse

EXERCISES = range(1, 12)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--exercise", type=int, choices=EXERCISES, metavar="N", help="check exercise N (1 to 11)"
    )
    which.add_argument(
        "--everyone", action="store_true", help="a table of every user's progress (instructor)"
    )
    return parser.parse_args(argv)


# %%
# Where the runs are
# ------------------
# The same store the lessons log to: ``MLFLOW_TRACKING_URI``, else ``mlflow.db``
# beside this script. Without a local store there is nothing done yet, and the
# checker says so rather than creating an empty one. MLflow tags every run with
# who logged it (``mlflow.user``): the sign-in name on a team server, else the
# computer's user name.
import getpass
import os
from pathlib import Path

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
LOCAL_STORE = "sqlite:///" + (HERE / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
USER = os.environ.get("MLFLOW_TRACKING_USERNAME") or getpass.getuser()


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (HERE / "mlflow.db").exists():
        return None
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
# Your runs: one search
# ---------------------
# Every check starts from the same filter: runs that finished (not FAILED, not
# still RUNNING) and carry your user name. A key with a dot goes in backticks,
# text in single quotes, and ``AND`` adds each check's own condition. Runs come
# newest first unless a check orders them by a metric, in one page of up to
# 1,000: more than anyone logs in a workshop.
def search_mine(client, user, experiment_name=None, filter_string="", order_by=None):
    """The user's finished runs in one experiment (None: in all) matching ``filter_string``;
    no store yet (``client`` None): none."""
    if client is None:
        return []
    if experiment_name is None:
        experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    else:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            return []
        experiment_ids = [experiment.experiment_id]
    mine = f"attributes.status = 'FINISHED' AND tags.`mlflow.user` = '{user}'"
    if filter_string:
        mine += f" AND {filter_string}"
    return client.search_runs(
        experiment_ids, mine, order_by=order_by or ["attributes.start_time DESC"]
    )


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# %%
# Exercises 1 and 2: demo.py
# --------------------------
# Params come back as text, as they were logged. A metric condition such as
# ``metrics.balanced_accuracy >= 0`` also keeps only the runs that have it.
DEMO = "demo-mlflow-artifacts"
LESSON_TAGS = {"model_type", "dataset", "owner"}


def other_forest_settings(client, user):
    runs = search_mine(client, user, DEMO)
    settings = {
        (run.data.params.get("n_estimators"), run.data.params.get("max_depth")) for run in runs
    }
    if len(settings) >= 2:
        return None
    tried = plural(len(settings), "forest setting")
    return f"{tried} tried, 2 needed: python demo.py --n-estimators 300 --max-depth 4"


def metric_and_own_tag(client, user):
    in_range = "metrics.balanced_accuracy >= 0 AND metrics.balanced_accuracy <= 1"
    runs = search_mine(client, user, DEMO, in_range)
    if not runs:
        return "no demo.py run has the metric balanced_accuracy: add it to score() in demo.py"
    for run in runs:
        for key in run.data.tags:
            if key not in LESSON_TAGS and not key.startswith("mlflow."):
                return None
    return (
        "the demo.py run with balanced_accuracy has no tag of your own "
        "(besides model_type, dataset, owner)"
    )


# %%
# Exercises 3 and 4: beat the default wine RMSE, and find the runs that do
# ------------------------------------------------------------------------
# ``params.alpha = '0.5'`` finds the runs with the default settings (text, as
# logged); ``order_by`` ranks by RMSE, the lowest first. A metric compares as a
# number: ``metrics.rmse < 0.733`` is the search exercise 4 asks for.
WINE = "wine-quality-elasticnet"
DEFAULT_SETTINGS = "params.alpha = '0.5' AND params.l1_ratio = '0.5'"
LOWEST_RMSE_FIRST = ["metrics.rmse ASC", "attributes.start_time ASC"]
NO_DEFAULT_RUN = (
    "no run with the default settings (alpha 0.5, l1_ratio 0.5) to beat: "
    "python train_wine_elasticnet.py"
)


def default_wine_run(client, user):
    """The user's newest wine run with the default settings, or None."""
    runs = search_mine(client, user, WINE, DEFAULT_SETTINGS)
    return runs[0] if runs else None


def beat_the_default(client, user):
    count = len(search_mine(client, user, WINE))
    if count < 5:
        return f"{plural(count, 'wine run')}, 5 needed"
    default = default_wine_run(client, user)
    if default is None:
        return NO_DEFAULT_RUN
    lowest = search_mine(client, user, WINE, order_by=LOWEST_RMSE_FIRST)[0]
    lowest_rmse = lowest.data.metrics["rmse"]
    if lowest_rmse >= default.data.metrics["rmse"]:
        return f"no run beats the default's RMSE {default.data.metrics['rmse']:.3f} yet"
    tagged = search_mine(client, user, WINE, "tags.best = 'true'")
    if not tagged:
        return (
            f"the lowest RMSE, {lowest_rmse:.3f}, is run {lowest.info.run_id[:8]}: tag it best=true"
        )
    for run in tagged:
        if run.data.metrics["rmse"] > lowest_rmse:
            return (
                f"best=true is on run {run.info.run_id[:8]} (RMSE {run.data.metrics['rmse']:.3f}), "
                f"but run {lowest.info.run_id[:8]} has the lowest, {lowest_rmse:.3f}"
            )
    return None


def tagged_what_beats_the_default(client, user):
    default = default_wine_run(client, user)
    if default is None:
        return NO_DEFAULT_RUN
    default_rmse = default.data.metrics["rmse"]
    beating = search_mine(client, user, WINE, f"metrics.rmse < {default_rmse}")
    if not beating:
        return "no wine run beats the default yet: exercise 3 first"
    tagged = search_mine(client, user, WINE, "tags.beats_default = 'true'")
    tagged_ids = {run.info.run_id for run in tagged}
    untagged = [run for run in beating if run.info.run_id not in tagged_ids]
    if untagged:
        return (
            f"{len(untagged)} of {len(beating)} runs that beat the default are not tagged "
            f"beats_default=true, e.g. run {untagged[0].info.run_id[:8]}"
        )
    beating_ids = {run.info.run_id for run in beating}
    for run in tagged:
        if run.info.run_id not in beating_ids:
            return (
                f"run {run.info.run_id[:8]} is tagged beats_default=true, but its RMSE "
                f"{run.data.metrics['rmse']:.3f} does not beat the default's {default_rmse:.3f}"
            )
    return None


# %%
# Exercise 5: the best wine model, registered with an alias
# ---------------------------------------------------------
# The registry has searches of its own: registered models by name (each with
# its aliases, alias -> version) and model versions by the run they came from.
# Reruns of the same settings tie; a version from any of them counts.
MODEL = "wine_quality"


def registered_with_alias(client, user):
    ranked = search_mine(client, user, WINE, order_by=LOWEST_RMSE_FIRST)
    if not ranked:
        return "no wine runs yet: exercise 3 first"
    models = client.search_registered_models(f"name = '{MODEL}'")
    if not models:
        return f"no registered model {MODEL} yet"
    lowest = ranked[0]
    ties = [run for run in ranked if run.data.metrics["rmse"] == lowest.data.metrics["rmse"]]
    run_ids = ", ".join(f"'{run.info.run_id}'" for run in ties)
    versions = client.search_model_versions(f"name = '{MODEL}' AND run_id IN ({run_ids})")
    if not versions:
        return f"no version of {MODEL} comes from your lowest-RMSE run {lowest.info.run_id[:8]}"
    aliased = {str(version) for version in models[0].aliases.values()}
    if any(str(version.version) in aliased for version in versions):
        return None
    newest = max(int(version.version) for version in versions)
    return f"version {newest} (your lowest-RMSE run) has no alias: give it champion"


# %%
# Exercise 6: load by alias and predict
# -------------------------------------
# ``LIKE`` matches text with ``%`` as a wildcard and ``IS NOT NULL`` asks that a
# param exists. The version's own run holds the RMSE on the same held-out wines.
SCORING = "wine-quality-scoring"


def scored_by_alias(client, user):
    recorded = (
        f"params.model_uri LIKE 'models:/{MODEL}@%' AND params.model_version IS NOT NULL "
        "AND metrics.holdout_rmse >= 0"
    )
    runs = search_mine(client, user, SCORING, recorded)
    if not runs:
        return (
            f"no run in experiment {SCORING} with params model_uri (models:/{MODEL}@...) "
            "and model_version yet"
        )
    mismatches = []
    for run in runs:
        version = client.get_model_version(MODEL, run.data.params["model_version"])
        source_rmse = client.get_run(version.run_id).data.metrics["rmse"]
        holdout_rmse = run.data.metrics["holdout_rmse"]
        if abs(holdout_rmse - source_rmse) < 1e-6:
            return None
        mismatches.append(
            f"holdout_rmse {holdout_rmse:.3f} is not the RMSE {source_rmse:.3f} of version "
            f"{version.version}: predict on its run's held-out wines (same test_size and seed)"
        )
    return mismatches[0]


# %%
# Exercise 7: a curve from a training loop of your own
# ----------------------------------------------------
# A run's search result holds each metric's latest value only; the whole curve,
# one value per step, comes from ``get_metric_history``.
def training_curve(client, user):
    runs = search_mine(client, user, "my-training-loop")
    if not runs:
        return "no run in experiment my-training-loop yet"
    longest = 0
    for run in runs:
        for key in run.data.metrics:
            history = client.get_metric_history(run.info.run_id, key)
            longest = max(longest, len({metric.step for metric in history}))
    if longest >= 10:
        return None
    return f"the longest curve has {plural(longest, 'step')}, 10 needed"


# %%
# Exercises 8 and 9: autolog another model; system metrics
# --------------------------------------------------------
# Autolog tags its runs with ``estimator_class``: ``IS NOT NULL`` finds them in
# every experiment. System metrics are named ``system/...``.
def another_autologged_model(client, user):
    runs = search_mine(client, user, None, "tags.estimator_class IS NOT NULL")
    if not runs:
        return "no autologged run yet: python autolog_grid_search.py, then swap its model"
    for run in runs:
        params = run.data.params
        described = " ".join([run.data.tags["estimator_class"], *params, *params.values()])
        if "ridgeclassifier" not in described.lower():
            return None
    return "every autologged run is the lesson's RidgeClassifier: autolog another model"


def system_metrics(client, user):
    for run in search_mine(client, user):
        if any(key.startswith("system/") for key in run.data.metrics):
            return None
    return "no run has system metrics: mlflow.start_run(log_system_metrics=True)"


# %%
# Exercise 10: promote only on evidence
# -------------------------------------
# Your newest evaluation run says what it compared and whether validation
# passed; the registered model's aliases say where the alias points now.
EVALUATION = "wine-quality-evaluation"
EVALUATION_TAGS = ["candidate_version", "baseline_version", "alias", "validation"]


def promoted_on_evidence(client, user):
    runs = search_mine(client, user, EVALUATION)
    if not runs:
        return f"no run in experiment {EVALUATION} yet"
    newest = runs[0]
    if "root_mean_squared_error" not in newest.data.metrics:
        return (
            "the evaluation run has no metric root_mean_squared_error: use mlflow.models.evaluate"
        )
    missing = [name for name in EVALUATION_TAGS if name not in newest.data.tags]
    if missing:
        return f"the evaluation run has no tag {missing[0]}"
    tags = newest.data.tags
    models = client.search_registered_models(f"name = '{MODEL}'")
    points_at = str(models[0].aliases.get(tags["alias"])) if models else "None"
    candidate = tags["candidate_version"]
    if tags["validation"] == "passed" and points_at != candidate:
        return (
            f"validation passed, but {tags['alias']} points at version {points_at}, "
            f"not the candidate {candidate}"
        )
    if tags["validation"] != "passed" and points_at == candidate:
        return f"validation failed, but {tags['alias']} was moved to the candidate {candidate}"
    return None


# %%
# Exercise 11: a run on the team server
# -------------------------------------
# A team server is an ``http(s)://`` tracking URI (team/README.md).
def on_the_team_server(client, user):
    if not TRACKING_URI.startswith(("http://", "https://")):
        return "MLFLOW_TRACKING_URI does not name a tracking server: see team/README.md"
    if search_mine(client, user):
        return None
    return f"no run of yours on {TRACKING_URI} yet"


# %%
# Check, for you or for everyone
# ------------------------------
# Each check returns None when the exercise is done, else what is missing. The
# instructor's table finds the users in the runs' ``mlflow.user`` tags:
# ``mlflow.search_runs`` pages through every experiment's runs by itself.
CHECKS = {
    1: other_forest_settings,
    2: metric_and_own_tag,
    3: beat_the_default,
    4: tagged_what_beats_the_default,
    5: registered_with_alias,
    6: scored_by_alias,
    7: training_curve,
    8: another_autologged_model,
    9: system_metrics,
    10: promoted_on_evidence,
    11: on_the_team_server,
}


def users_with_runs(client):
    if client is None:
        return []
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return sorted({run.data.tags["mlflow.user"] for run in runs if "mlflow.user" in run.data.tags})


def print_table(progress):
    width = max([6, *map(len, progress)]) + 2
    print("user".ljust(width) + "".join(f"{number:>3}" for number in EXERCISES) + "  done")
    for user, messages in progress.items():
        marks = "".join(f"{'.' if messages[number] else 'x':>3}" for number in EXERCISES)
        done = sum(message is None for message in messages.values())
        print(user.ljust(width) + marks + f"{done:>6}")


def main(argv=None):
    args = parse_args(argv)
    client = use_store()
    if args.everyone:
        progress = {
            user: {number: check(client, user) for number, check in CHECKS.items()}
            for user in users_with_runs(client)
        }
        print_table(progress)
        return progress
    numbers = [args.exercise] if args.exercise else list(CHECKS)
    messages = {number: CHECKS[number](client, USER) for number in numbers}
    for number, message in messages.items():
        print(f"exercise {number}: {'done' if message is None else f'not yet: {message}'}")
    if args.exercise is None:
        done = sum(message is None for message in messages.values())
        print(f"{done} of {len(messages)} done.")
    return messages


# %%
# Run the lesson
# --------------
# Ctrl+C raises KeyboardInterrupt, and SIGTERM (``kill``) is made to raise it
# too. The checker only reads, so stopping it leaves nothing half-done: one
# line, and the exit code a shell expects (130 or 143). In a notebook, whose
# command line is the kernel's own, it checks every exercise.
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
        print(f"Stopped by {name}: nothing was changed, the checker only reads.", file=sys.stderr)
        sys.exit(128 + signum)
    except MlflowException as error:
        sys.exit(f"MLflow: {error.message}")
