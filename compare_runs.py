"""Lesson: find, filter and rank runs with the MLflow client.

Which settings gave the best score? ``MlflowClient`` searches an experiment's
runs with MLflow's filter syntax, ranks them by one metric and names the best
run and its model; ``--csv`` saves the runs, ``--plot`` charts params against
the metric. After a few runs of train_wine_elasticnet.py:

    python compare_runs.py
    python compare_runs.py --filter "metrics.rmse < 0.7" --csv wine_runs.csv --plot wine_runs.png
    python compare_runs.py --experiment demo-mlflow-artifacts --metric roc_auc
"""

# %%
# Settings
# --------
# One metric per workshop experiment says which run is better: an error ranks
# lowest first (ASC), a score highest first (DESC). Any other experiment needs
# ``--metric``.
import argparse
from pathlib import Path

EXPERIMENT_NAME = "wine-quality-elasticnet"
RANKING = {
    "wine-quality-elasticnet": ("rmse", "ASC"),
    "wine-quality-dvc": ("rmse", "ASC"),
    "demo-mlflow-artifacts": ("accuracy", "DESC"),
    "iris_classification": ("accuracy", "DESC"),
    "spark-breast-cancer": ("roc_auc", "DESC"),
    "digits-training-curves": ("best_val_loss", "ASC"),
}
MAX_RESULTS = 100
PAGE_SIZE = 1000  # runs per request: each page is one round trip that filters and sorts


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--experiment", default=EXPERIMENT_NAME, help="the experiment to compare")
    parser.add_argument("--filter", default="", help="a search filter, e.g. 'metrics.rmse < 0.7'")
    parser.add_argument("--metric", help="the metric to rank by; None: the one in RANKING")
    parser.add_argument(
        "--order",
        type=str.upper,
        choices=["ASC", "DESC"],
        help="ASC lowest first, DESC highest; None: RANKING's, else ASC",
    )
    parser.add_argument("--max-results", type=int, default=MAX_RESULTS, help="at most this many")
    parser.add_argument("--csv", metavar="PATH", help="write every matched run to a CSV file")
    parser.add_argument("--plot", metavar="PATH", help="draw params against the metric, a PNG")
    args = parser.parse_args(argv)
    # Checked before anything is searched: a bad value is one line.
    if args.max_results < 1:
        parser.error("--max-results must be at least 1")
    if args.plot and not args.plot.lower().endswith(".png"):
        parser.error(f"--plot: the chart is a PNG file: end {args.plot} in .png")
    for path in (args.csv, args.plot):
        if path and not Path(path).resolve().parent.is_dir():
            parser.error(f"cannot write {path}: its folder does not exist")
    return parser, args


# %%
# Where the runs are
# ------------------
# The same store the lessons log to: ``MLFLOW_TRACKING_URI``, else ``mlflow.db``
# beside this script. This lesson only reads: without a local store yet there
# is nothing to compare, and it says so rather than creating an empty one.
import os

import mlflow
from filelock import FileLock
from mlflow import MlflowClient

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
LOCAL_STORE = "sqlite:///" + (HERE / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
NO_RUNS_YET = "There are no runs yet: run `python train_wine_elasticnet.py` first."


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (HERE / "mlflow.db").exists():
        raise SystemExit(NO_RUNS_YET)
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
# Which experiment?
# -----------------
# ``search_experiments`` lists every experiment in the store. A misspelt name
# gets one sentence with the names that do exist.
def find_experiment(client, name):
    experiments = client.search_experiments(order_by=["name ASC"])
    names = [experiment.name for experiment in experiments]
    if name not in names:
        listed = ", ".join(f"'{name}'" for name in names)
        raise SystemExit(f"There is no experiment named '{name}'; the experiments are: {listed}.")
    return experiments, experiments[names.index(name)]


# %%
# Search runs, page by page
# -------------------------
# A filter (params are text, so quoted: ``params.alpha = '0.1'``), then a sort
# by the metric (runs without it last) and the start time (of two tied runs the
# older first: the sweep's champion rule). A store hands out results a page at
# a time; each page holds a ``token`` for the next.
def search_all_pages(client, experiment_ids, filter_string, order_by, max_results):
    runs = []
    pages = 0
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string,
            max_results=min(PAGE_SIZE, max_results - len(runs)),
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        pages += 1
        token = page.token
        if not token or len(runs) >= max_results:
            return runs, pages, bool(token)


# %%
# Rank the runs that logged the metric
# ------------------------------------
# A run is ``info`` (id, name, status) and ``data`` (params, metrics, tags).
# The table shows the params that differ and up to five metrics; runs without
# the metric (a sweep's parent, a failed run) are named below it.
import pandas as pd


def differing_params(runs):
    """The names of the params whose values differ between ``runs``, sorted."""
    names = sorted({name for run in runs for name in run.data.params})
    return [name for name in names if len({run.data.params.get(name) for run in runs}) > 1]


def print_ranking(runs, metric):
    ranked = [run for run in runs if metric in run.data.metrics]
    if not ranked:
        logged = sorted({name for run in runs for name in run.data.metrics})
        print(
            f"No runs to compare: none has a metric '{metric}' (metrics logged: "
            f"{', '.join(logged) or 'none'})."
        )
        return ranked
    others = sorted({name for run in ranked for name in run.data.metrics} - {metric})
    rows = []
    for rank, run in enumerate(ranked, start=1):
        row = {"#": rank, "run name": run.info.run_name, "run id": run.info.run_id[:8]}
        for name in differing_params(ranked):
            row[name] = run.data.params.get(name)
        for name in [metric, *others][:5]:
            row[name] = run.data.metrics.get(name)
        rows.append(row)
    print(pd.DataFrame(rows).to_string(index=False, na_rep="-", float_format="{:.3f}".format))
    unranked = [run.info.run_name for run in runs if metric not in run.data.metrics]
    if unranked:
        print(f"Not ranked, no metric '{metric}': {', '.join(unranked)}")
    return ranked


# %%
# A chart: params against the metric
# ----------------------------------
# One panel per numeric param that differs, the best run in orange. A bare
# ``Figure`` draws straight into a file: no window, no pyplot.
from matplotlib.figure import Figure


def plot_params(ranked, metric, order, path):
    params = pd.DataFrame([run.data.params for run in ranked])[differing_params(ranked)]
    params = params.apply(pd.to_numeric, errors="coerce").dropna(axis="columns")
    if params.empty:
        print("No chart: no numeric param differs between the ranked runs.")
        return
    scores = [run.data.metrics[metric] for run in ranked]
    figure = Figure(figsize=(1 + 4 * len(params.columns), 4), layout="tight")
    axes = figure.subplots(1, len(params.columns), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, params.columns, strict=True):
        ax.scatter(params[name], scores, label="run")
        ax.scatter(params[name][:1], scores[:1], color="tab:orange", s=80, label="best run")
        ax.set_xlabel(name)
    better = "lower" if order == "ASC" else "higher"
    axes[0].set_ylabel(f"{metric} ({better} is better)")
    axes[0].legend()
    figure.savefig(path)
    print(f"Wrote the chart to {path}")


# %%
# Compare, export, and the best run
# ---------------------------------
# ``mlflow.search_runs`` (``--csv``) does the same search in one call and
# returns a pandas DataFrame: one column per param, metric and tag. The best
# run's model is found with ``search_logged_models``. A filter MLflow cannot
# parse is a bad flag: its reason, in argparse's one line.
from mlflow.entities import LoggedModelStatus


def print_best(client, experiment, best, metric, order_by):
    value = f"{metric} = {best.data.metrics[metric]:.3f}"
    print(f"\nBest run by {order_by[0]}: {best.info.run_name} {best.info.run_id} {value}")
    ids = [experiment.experiment_id]
    # A model whose upload was stopped (Ctrl+C) stays PENDING, and has no files to load.
    for model in client.search_logged_models(ids, f"source_run_id = '{best.info.run_id}'"):
        if model.status == LoggedModelStatus.READY:
            print(f"Its model: python load_model.py --model-uri {model.model_uri}")
        else:
            print(f"Its model {model.model_id} is {model.status.value}: its upload did not finish.")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:    {ui}/#/experiments/{experiment.experiment_id}/runs/{best.info.run_id}"
        "?workflowType=machine_learning"
    )


def main(argv=None):
    parser, args = parse_args(argv)
    client = use_store()
    experiments, experiment = find_experiment(client, args.experiment)
    metric, order = RANKING.get(experiment.name, (None, "ASC"))
    metric = args.metric or metric
    order = args.order or order
    if metric is None:
        parser.error(f"'{experiment.name}' has no default metric: pass --metric NAME")
    ids = [experiment.experiment_id]
    order_by = [f"metrics.{metric} {order}", "attributes.start_time ASC"]
    try:
        runs, pages, more = search_all_pages(client, ids, args.filter, order_by, args.max_results)
    except mlflow.exceptions.MlflowException as error:
        if error.error_code != "INVALID_PARAMETER_VALUE":
            raise
        parser.error(f"MLflow cannot use this --filter or --metric: {error.message}")

    print("Experiments in this tracking store:")
    for each in experiments:
        print(f"  {each.name:<32} id {each.experiment_id}")
    matching = f" matching {args.filter!r}" if args.filter else ""
    print(
        f"\nExperiment '{experiment.name}': {len(runs)} run{'s' * (len(runs) != 1)}{matching}, "
        f"ordered by {order_by[0]} ({pages} page{'s' * (pages > 1)} of up to {PAGE_SIZE})"
    )
    if more:
        print(f"More runs match: only the first {args.max_results} are shown (see --max-results).")
    if args.csv:
        table = mlflow.search_runs(
            ids, args.filter, max_results=args.max_results, order_by=order_by
        )
        table.to_csv(args.csv, index=False)
        print(f"Wrote {len(table)} runs with all their params, metrics and tags to {args.csv}")
    ranked = print_ranking(runs, metric)
    if ranked and args.plot:
        plot_params(ranked, metric, order, args.plot)
    if ranked:
        print_best(client, experiment, ranked[0], metric, order_by)
    best = ranked[0] if ranked else None
    return {"experiment": experiment, "runs": runs, "ranked": ranked, "best_run": best}


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
