"""Lesson: find, filter and rank runs with the MLflow client.

Which settings gave the best score? ``MlflowClient`` asks the tracking store:
this script searches one experiment's runs with MLflow's filter syntax, ranks
them by one metric and names the best run; it can also write the runs to a CSV
file and draw params against the metric. After a few runs of
train_wine_elasticnet.py, from the repository root:

    python compare_runs.py
    python compare_runs.py --filter "metrics.rmse < 0.7" --csv wine_runs.csv --plot wine_runs.png
    python compare_runs.py --experiment demo-mlflow-artifacts --metric roc_auc
"""

# %%
# 1. Which metric says "better"?
# ------------------------------
# One metric per workshop experiment: an error ranks best low (ASC, lowest
# first), a score best high (DESC). Other experiments need ``--metric``.
import plumbing

EXPERIMENT_NAME = "wine-quality-elasticnet"
RANKING = {
    "wine-quality-elasticnet": ("rmse", "ASC"),
    "demo-mlflow-artifacts": ("accuracy", "DESC"),
    "iris_classification": ("accuracy", "DESC"),
    "digits-training-curves": ("best_val_loss", "ASC"),
}
MAX_RESULTS = 100
PAGE_SIZE = 1000  # runs per request: each page is one round trip that filters and sorts
MAX_METRIC_COLUMNS = 5  # in the printed table; the CSV has every metric


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--experiment", default=EXPERIMENT_NAME, help="the experiment to compare")
    add("--filter", default="", help="an MLflow search filter, e.g. 'metrics.rmse < 0.7'")
    add("--metric", help="the metric to rank by (default: the experiment's in RANKING)")
    add("--order", type=str.upper, choices=["ASC", "DESC"], help="default: RANKING's, else ASC")
    add("--max-results", type=plumbing.positive_int, default=MAX_RESULTS, help="at most this many")
    add("--csv", metavar="PATH", type=plumbing.new_file, help="write every matched run to a CSV")
    add("--plot", metavar="PATH", type=plumbing.new_png, help="draw params against the metric")
    return parser, parser.parse_args(argv)


# %%
# 2. Search runs, page by page
# ----------------------------
# A filter (params are text, so quoted: ``params.alpha = '0.1'``) and a sort
# clause (``metrics.rmse ASC``; runs without that metric come last). The store
# answers one page at a time, with a ``token`` to ask for the next one.
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def search_all_pages(client, experiment_id, filter_string, order_by, max_results):
    runs, token, pages = [], None, 0
    while not pages or (token and len(runs) < max_results):
        size = min(PAGE_SIZE, max_results - len(runs))
        page = client.search_runs(
            [experiment_id], filter_string, max_results=size, order_by=order_by, page_token=token
        )
        runs, token, pages = runs + list(page), page.token, pages + 1
    return runs, pages, bool(token)


# %%
# 3. Rank the runs that logged the metric
# ---------------------------------------
# A run is ``info`` (id, name, status) and ``data`` (params, metrics, tags).
# The table shows the params that differ; a run without the metric (a sweep's
# parent run has no score of its own) is named below it.
import pandas as pd


def differing_params(runs):
    names = sorted({name for run in runs for name in run.data.params})
    return [name for name in names if len({run.data.params.get(name) for run in runs}) > 1]


def print_ranking(runs, metric):
    """Print the runs that logged ``metric`` as a table, best first, and return them."""
    ranked = [run for run in runs if metric in run.data.metrics]
    unranked = [run.info.run_name for run in runs if metric not in run.data.metrics]
    if not ranked:
        logged = ", ".join(sorted({name for run in runs for name in run.data.metrics})) or "none"
        print(f"No runs to compare: none has a metric '{metric}' (metrics logged: {logged}).")
        return ranked
    metrics = [metric, *sorted({m for run in ranked for m in run.data.metrics} - {metric})]
    rows = [
        {"#": rank, "run name": run.info.run_name, "run id": run.info.run_id[:8]}
        | {name: run.data.params.get(name) for name in differing_params(ranked)}
        | {name: run.data.metrics.get(name) for name in metrics[:MAX_METRIC_COLUMNS]}
        for rank, run in enumerate(ranked, start=1)
    ]
    print(pd.DataFrame(rows).to_string(index=False, na_rep="-", float_format="{:.3f}".format))
    if unranked:
        print(f"Not ranked, no metric '{metric}': " + ", ".join(unranked))
    return ranked


# %%
# 4. A chart: which setting moves the metric?
# -------------------------------------------
# One panel per numeric param that differs, the best run in orange. Only
# ``--plot`` imports matplotlib (0.4 s); a bare ``Figure`` draws to a file.
def plot_params(ranked, metric, order, path):
    table = pd.DataFrame([run.data.params for run in ranked]).apply(pd.to_numeric, errors="coerce")
    params = [name for name in differing_params(ranked) if table[name].notna().all()]
    if not params:
        print("No chart: no numeric param differs between the ranked runs.")
        return
    from matplotlib.figure import Figure

    scores = [run.data.metrics[metric] for run in ranked]
    fig = Figure(figsize=(1 + 4 * len(params), 4), layout="tight")
    axes = fig.subplots(1, len(params), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, params, strict=True):
        ax.scatter(table[name], scores, label="run")
        ax.scatter(table[name][:1], scores[:1], color="tab:orange", s=80, label="best run")
        ax.set_xlabel(name)
    axes[0].set_ylabel(f"{metric} ({'lower' if order == 'ASC' else 'higher'} is better)")
    axes[0].legend()
    fig.savefig(path)
    print(f"Wrote the chart to {path}")


# %%
# 5. Compare, export, and the best run
# ------------------------------------
# All store work sits in one ``try``: a filter or metric MLflow cannot use gets
# MLflow's reason, any other failure one sentence about the store.
import mlflow

NO_RUNS_YET = "There are no runs yet: run `python train_wine_elasticnet.py` first."
CREATE_IT = " (run `python train_wine_elasticnet.py` to create it)"


def find_experiment(client, name):
    experiments = client.search_experiments(order_by=["name ASC"])
    names = [experiment.name for experiment in experiments]
    if name not in names:
        hint = CREATE_IT if name == EXPERIMENT_NAME else ""
        listed = ", ".join(f"'{name}'" for name in names)
        raise SystemExit(
            f"There is no experiment named '{name}'; the experiments are: {listed}{hint}."
        )
    return experiments, experiments[names.index(name)]


def main(argv=None):
    parser, args = parse_args(argv)
    uri = plumbing.connect(missing_store_message=NO_RUNS_YET)
    client = MlflowClient(uri)
    try:
        experiments, experiment = find_experiment(client, args.experiment)
        metric, order = RANKING.get(experiment.name, (None, "ASC"))
        metric, order = args.metric or metric, args.order or order
        if metric is None:
            parser.error(f"'{experiment.name}' has no default metric: pass --metric NAME")
        order_by = [f"metrics.{metric} {order}"]
        ids, limit = [experiment.experiment_id], args.max_results
        runs, pages, more = search_all_pages(client, ids[0], args.filter, order_by, limit)
    except MlflowException as error:
        if error.error_code != "INVALID_PARAMETER_VALUE":
            raise SystemExit(plumbing.unreachable_message(uri, error)) from None
        parser.error(f"MLflow cannot use this --filter or --metric: {error.message}")

    print("Experiments in this tracking store:")
    print("\n".join(f"  {e.name:<32} id {e.experiment_id}" for e in experiments))
    matching = f" matching {args.filter!r}" if args.filter else ""
    print(
        f"\nExperiment '{experiment.name}': {len(runs)} run{'s' * (len(runs) != 1)}{matching}, "
        f"ordered by {order_by[0]} ({pages} page{'s' * (pages > 1)} of up to {PAGE_SIZE})"
    )
    if more:
        print(f"More runs match: only the first {limit} are shown (see --max-results).")
    if args.csv:  # the fluent API's search: a DataFrame, one column per param, metric and tag
        table = mlflow.search_runs(ids, args.filter, max_results=limit, order_by=order_by)
        table.to_csv(args.csv, index=False)
        print(f"Wrote {len(table)} runs with all their params, metrics and tags to {args.csv}")
    ranked = print_ranking(runs, metric)
    if not ranked:
        return {"experiment": experiment, "runs": runs, "ranked": [], "best_run": None}
    if args.plot:
        plot_params(ranked, metric, order, args.plot)

    # The best run, its model (``search_logged_models``) and where to see it.
    best = ranked[0]
    value = f"{metric} = {best.data.metrics[metric]:.3f}"
    print(f"\nBest run by {order_by[0]}: {best.info.run_name} {best.info.run_id} {value}")
    run_filter = f"source_run_id = '{best.info.run_id}'"
    for model in client.search_logged_models(ids, filter_string=run_filter):
        print(f"Its model: python load_model.py --model-uri {model.model_uri}")
    print("\n".join(plumbing.where_to_look(best)))
    return {"experiment": experiment, "runs": runs, "ranked": ranked, "best_run": best}


if __name__ == "__main__":
    main()
