"""Lesson: find, filter and rank runs with the MLflow client.

Once a few runs exist, the question is always the same: which settings gave
the best score? This script asks the tracking store through ``MlflowClient``:
it lists the experiments, searches the runs of one experiment with MLflow's
filter syntax, ranks them by a metric, prints a table and the best run, and
can write every matched run to a CSV file for pandas or a spreadsheet.

Run it from the repository root after a few runs of train_wine_elasticnet.py:

    python compare_runs.py
    python compare_runs.py --filter "metrics.rmse < 0.7" --csv wine_runs.csv
    python compare_runs.py --experiment demo-mlflow-artifacts

The same searches work in the MLflow UI's search box and in ``mlflow.search_runs``.
"""

# %%
# Settings
# --------
# Defaults for the command-line flags. Without ``--order-by`` the ranking
# metric is the first of PREFERRED_METRICS that the runs logged, so the
# script suits every experiment of the workshop; an experiment with none of
# them is ranked by its alphabetically first metric.
import argparse

EXPERIMENT_NAME = "wine-quality-elasticnet"
MAX_RESULTS = 100
# The tracking store hands out search results in pages of at most this many
# runs. Every page is one request that filters and sorts again, so large
# pages are faster: 1,000 runs take one request instead of twenty of 50.
PAGE_SIZE = 1000
# Without --order-by, the newest this many runs show which metrics exist.
METRIC_SAMPLE_SIZE = 50
# Metric name -> sort direction, most preferred first: errors are best low,
# scores are best high.
PREFERRED_METRICS = {
    "rmse": "ASC",
    "mae": "ASC",
    "accuracy": "DESC",
    "f1_score": "DESC",
    "f1": "DESC",
    "r2": "DESC",
    "roc_auc": "DESC",
}
# For any other metric: lower is better when its name contains one of these.
LOWER_IS_BETTER_WORDS = ("loss", "error", "rmse", "mae", "mse")
# At most this many param and metric columns in the printed table (the CSV has all).
MAX_COLUMNS = 5


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiment",
        default=EXPERIMENT_NAME,
        help=f"name of the experiment whose runs to compare (default {EXPERIMENT_NAME})",
    )
    parser.add_argument(
        "--filter",
        default="",
        help="MLflow search filter, for example \"metrics.rmse < 0.7 and params.alpha = '0.5'\"",
    )
    parser.add_argument(
        "--order-by",
        action="append",
        help="sort clause such as 'metrics.r2 DESC'; repeat for tie-breakers "
        "(default: the experiment's main metric, best first)",
    )
    parser.add_argument(
        "--max-results",
        type=positive_int,
        default=MAX_RESULTS,
        help=f"fetch at most this many runs (default {MAX_RESULTS})",
    )
    parser.add_argument("--csv", metavar="PATH", help="also write every matched run to this CSV")
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="also draw each numeric param against the ranking metric into this PNG",
    )
    return parser, parser.parse_args(argv)


# %%
# 1. Which experiments exist?
# ---------------------------
# ``MlflowClient`` is MLflow's low-level API: one method per thing the
# tracking store can do, with no "active run" state. ``search_experiments``
# lists the experiments. (There is no call that only counts runs: counting
# means fetching them all, so the list shows names and ids.)
from pathlib import Path

from mlflow import MlflowClient


def print_experiments(experiments):
    print("Experiments in this tracking store:")
    for experiment in experiments:
        print(f"  {experiment.name:<32} id {experiment.experiment_id}")


# %%
# 2. Search runs, page by page
# ----------------------------
# ``search_runs`` takes a filter (``metrics.rmse < 0.7``, ``params.alpha =
# '0.5'``, ``attributes.status = 'FINISHED'``; params are text, so their
# values are quoted) and sort clauses (``metrics.rmse ASC``). The store sorts
# and returns one page at a time plus a ``token`` for the next page, so even
# thousands of runs never come back in one huge answer. Runs that lack the
# sort metric come last.


def default_order_by(client, experiment_id, filter_string):
    """The rule for ``--order-by`` when none is given, from the metrics the runs logged."""
    sample = client.search_runs([experiment_id], filter_string, max_results=METRIC_SAMPLE_SIZE)
    logged = sorted({name for run in sample for name in run.data.metrics})
    if not logged:
        return ["attributes.start_time DESC"]  # nothing to rank by: newest first
    for name, direction in PREFERRED_METRICS.items():
        if name in logged:
            return [f"metrics.{name} {direction}"]
    name = logged[0]
    lower_is_better = any(word in name.lower() for word in LOWER_IS_BETTER_WORDS)
    return [f"metrics.{name} {'ASC' if lower_is_better else 'DESC'}"]


def search_all_pages(client, experiment_id, filter_string, order_by, max_results):
    runs, token, pages = [], None, 0
    while len(runs) < max_results:
        page = client.search_runs(
            [experiment_id],
            filter_string,
            max_results=min(PAGE_SIZE, max_results - len(runs)),
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        pages += 1
        token = page.token
        if not token:
            break
    return runs, pages, bool(token)


# %%
# 3. From runs to a table
# -----------------------
# Each run carries ``info`` (id, name, status, times), ``data.params`` (text),
# ``data.metrics`` (latest value of each) and ``data.tags``. A pandas
# DataFrame with one row per run and one column per value is what
# ``mlflow.search_runs`` returns too, and it writes itself to CSV. A nested
# run (one configuration of a sweep) names its parent in the tag
# ``mlflow.parentRunId``.
import pandas as pd

PARENT_TAG = "mlflow.parentRunId"


def runs_dataframe(runs):
    rows = []
    for run in runs:
        row = {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "parent_run_id": run.data.tags.get(PARENT_TAG),
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
        }
        row.update({f"metrics.{k}": v for k, v in sorted(run.data.metrics.items())})
        row.update({f"params.{k}": v for k, v in sorted(run.data.params.items())})
        row.update({f"tags.{k}": v for k, v in sorted(run.data.tags.items())})
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("start_time", "end_time"):  # MLflow keeps milliseconds since 1970
        if column in table:  # (a table of no runs has no columns)
            table[column] = pd.to_datetime(table[column], unit="ms", utc=True)
    return table


def key_params(runs):
    """Params whose values differ between the runs, and those that are the same in all."""
    names = sorted({name for run in runs for name in run.data.params})
    values = {name: {run.data.params.get(name) for run in runs} for name in names}
    varying = [name for name in names if len(values[name]) > 1]
    same = {name: values[name].pop() for name in names if len(values[name]) == 1}
    if not varying:  # a single run, or identical settings: show the settings themselves
        varying, same = names, {}
    return varying, same


def print_table(runs, metric, client):
    varying, same = key_params(runs)
    metrics = sorted({name for run in runs for name in run.data.metrics})
    if metric in metrics:  # the ranking metric comes first
        metrics.remove(metric)
        metrics.insert(0, metric)
    names = {run.info.run_id: run.info.run_name for run in runs}
    nested = any(PARENT_TAG in run.data.tags for run in runs)

    rows = []
    for rank, run in enumerate(runs, start=1):
        row = {"#": rank, "run name": run.info.run_name[:30], "run id": run.info.run_id[:8]}
        if nested:
            parent_id = run.data.tags.get(PARENT_TAG)
            if parent_id and parent_id not in names:
                names[parent_id] = client.get_run(parent_id).info.run_name
            row["parent"] = names.get(parent_id, "-")[:24] if parent_id else "-"
        row.update({name: run.data.params.get(name) for name in varying[:MAX_COLUMNS]})
        row.update({name: run.data.metrics.get(name) for name in metrics[:MAX_COLUMNS]})
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, na_rep="-", float_format=lambda value: f"{value:.3f}"))
    if same:
        print("Same in every run: " + ", ".join(f"{k}={v}" for k, v in same.items()))
    hidden = len(varying[MAX_COLUMNS:]) + len(metrics[MAX_COLUMNS:])
    if hidden:
        print(f"({hidden} more params and metrics are in the --csv file)")


# %%
# 4. A chart: which setting moves the metric?
# -------------------------------------------
# One panel per numeric param that differs between the runs, each run a dot
# (the best one highlighted). A table ranks runs; a chart shows the trend.


def numeric_params(runs):
    """Params with a number in every run and more than one distinct value."""
    found = {}
    for name in key_params(runs)[0]:
        values = pd.to_numeric(pd.Series([run.data.params.get(name) for run in runs]), "coerce")
        if values.notna().all() and values.nunique() > 1:
            found[name] = values
    return found


def params_vs_metric_figure(runs, metric, lower_is_better, title):
    params = numeric_params(runs)
    if not params:
        return None
    # Imported here, not at the top, because only --plot needs it (importing it
    # takes about 0.4 s). A bare Figure, without pyplot, draws straight to a file:
    # no window, no figure to close.
    from matplotlib.figure import Figure

    scores = [run.data.metrics[metric] for run in runs]
    fig = Figure(figsize=(max(6, 4.2 * len(params)), 4))
    axes = fig.subplots(1, len(params), sharey=True, squeeze=False)
    for ax, (name, values) in zip(axes[0], params.items(), strict=True):
        ax.scatter(values[1:], scores[1:], color="tab:blue", label="run")
        ax.scatter(values[:1], scores[:1], color="tab:orange", s=80, label="best run")
        if values.min() > 0 and values.max() / values.min() >= 100:
            ax.set_xscale("log")  # e.g. alpha from 0.01 to 1
        ax.set_xlabel(name)
        ax.grid(alpha=0.3)
    better = "lower" if lower_is_better else "higher"
    axes[0][0].set_ylabel(f"{metric} ({better} is better)")
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# %%
# 5. Compare
# ----------
# Errors a participant will make get one sentence each: a mistyped
# experiment name (here are the ones that exist), a filter MLflow cannot
# parse (here is MLflow's reason).
import re

from mlflow.exceptions import MlflowException

import workshop_store


def main(argv=None):
    parser, args = parse_args(argv)
    for flag, path in (("--csv", args.csv), ("--plot", args.plot)):
        if path and not Path(path).resolve().parent.is_dir():
            raise SystemExit(f"Cannot write {flag} {path}: its folder does not exist.")
    if workshop_store.is_local() and not (workshop_store.REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit("There are no runs yet: run `python train_wine_elasticnet.py` first.")
    uri = workshop_store.connect()
    client = MlflowClient(uri)

    try:
        experiments = client.search_experiments(order_by=["name ASC"])
    except MlflowException as error:
        raise SystemExit(workshop_store.unreachable_message(uri, error)) from None
    experiment = next((e for e in experiments if e.name == args.experiment), None)
    if experiment is None:
        names = ", ".join(f"'{e.name}'" for e in experiments)
        hint = " (run `python train_wine_elasticnet.py` to create it)"
        raise SystemExit(
            f"There is no experiment named '{args.experiment}'; the experiments are: {names}"
            + (hint if args.experiment == EXPERIMENT_NAME else "")
            + "."
        )

    try:
        order_by = args.order_by or default_order_by(client, experiment.experiment_id, args.filter)
        runs, pages, more = search_all_pages(
            client, experiment.experiment_id, args.filter, order_by, args.max_results
        )
    except MlflowException as error:
        if error.error_code != "INVALID_PARAMETER_VALUE":
            raise SystemExit(workshop_store.unreachable_message(uri, error)) from None
        parser.error(f"MLflow cannot use this --filter or --order-by: {error.message}")

    print_experiments(experiments)
    print(
        f"\nExperiment '{experiment.name}': {len(runs)} run{'s' * (len(runs) != 1)}"
        + (f" matching {args.filter!r}" if args.filter else "")
        + f", ordered by {', '.join(order_by)} ({pages} page{'s' * (pages > 1)} of up to "
        + f"{PAGE_SIZE})"
    )
    if more:
        print(f"More runs match: only the first {args.max_results} are shown (see --max-results).")
    table = runs_dataframe(runs)
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"Wrote {len(table)} runs with all their params, metrics and tags to {args.csv}")
    if not runs:
        print("No runs to compare.")
        return {"experiment": experiment, "runs": [], "table": table, "best_run": None}

    # Runs without the ranking metric (a sweep's parent run, a failed run)
    # cannot be ranked by it; they are named below the table instead.
    match = re.fullmatch(r"metrics\.[`\"]?(.+?)[`\"]?(\s+(ASC|DESC))?", order_by[0].strip(), re.I)
    metric = match.group(1) if match else None
    ranked = [run for run in runs if metric is None or metric in run.data.metrics]
    unranked = [run for run in runs if run not in ranked]
    if ranked:
        print_table(ranked, metric, client)
    if unranked:
        children = pd.Series([run.data.tags.get(PARENT_TAG) for run in runs]).value_counts()
        described = [
            f"{run.info.run_name} ({run.info.run_id[:8]}, {run.info.status.lower()}"
            + (
                f", parent of {children[run.info.run_id]} runs"
                if run.info.run_id in children
                else ""
            )
            + ")"
            for run in unranked
        ]
        print(f"Not ranked, no metric '{metric}': " + "; ".join(described))

    if args.plot:
        title = f"{experiment.name}: {metric or 'no metric'} by param, {len(ranked)} runs"
        lower_is_better = not order_by[0].strip().upper().endswith("DESC")
        fig = params_vs_metric_figure(ranked, metric, lower_is_better, title) if metric else None
        if fig is None:
            print("No chart: no numeric param differs between runs ranked by a metric.")
        else:
            fig.savefig(args.plot, dpi=100)
            print(f"Wrote the chart to {args.plot}")

    # %%
    # 6. The best run and where to go next
    # ------------------------------------
    best_run = ranked[0] if ranked else None
    if best_run is not None:
        value = f" {metric} = {best_run.data.metrics[metric]:.3f}" if metric else ""
        print(
            f"\nBest run by {order_by[0]}: {best_run.info.run_name} {best_run.info.run_id}{value}"
        )
        models = client.search_logged_models(
            [experiment.experiment_id], filter_string=f"source_run_id = '{best_run.info.run_id}'"
        )
        for model in models:
            print(f"Its model: python load_model.py --model-uri {model.model_uri}")
        for line in workshop_store.where_to_look(best_run):
            print(line)
    return {"experiment": experiment, "runs": runs, "table": table, "best_run": best_run}


if __name__ == "__main__":
    main()
