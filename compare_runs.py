"""Lesson: find, filter and rank runs with the MLflow client.

Which settings gave the best score? ``MlflowClient`` searches an experiment's runs with
MLflow's filter syntax, ranks them by one metric and names the best run; ``--csv`` saves the
runs, ``--plot`` charts params against the metric. After a few runs of train_wine_elasticnet.py:

    python compare_runs.py
    python compare_runs.py --filter "metrics.rmse < 0.7" --csv wine_runs.csv --plot wine_runs.png
    python compare_runs.py --experiment demo-mlflow-artifacts --metric roc_auc
"""

# %%
# 1. Which metric says "better"?
# ------------------------------
# One metric per workshop experiment: an error ranks lowest first (ASC), a score highest (DESC).
import plumbing

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
# A filter (params are text, so quoted: ``params.alpha = '0.1'``), then a sort by the metric
# (runs without it last) and the start time (of two tied runs the older first: the sweep's
# champion rule). Each page holds a ``token`` for the next. ``mlflow.search_runs`` (``--csv``)
# does the same search in one call and returns a pandas DataFrame.
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def search_all_pages(client, ids, where, order_by, max_results):
    runs, token, pages = [], None, 0
    while not pages or (token and len(runs) < max_results):
        size = min(PAGE_SIZE, max_results - len(runs))
        page = client.search_runs(ids, where, max_results=size, order_by=order_by, page_token=token)
        runs, token, pages = runs + list(page), page.token, pages + 1
    return runs, pages, bool(token)


# %%
# 3. Rank the runs that logged the metric
# ---------------------------------------
# A run is ``info`` (id, name, status) and ``data`` (params, metrics, tags). The table shows
# the params that differ and five metrics; runs without the metric (a sweep's parent) follow.
import pandas as pd


def print_ranking(runs, metric):
    ranked = [run for run in runs if metric in run.data.metrics]
    if not ranked:
        logged = ", ".join(sorted({name for run in runs for name in run.data.metrics})) or "none"
        print(f"No runs to compare: none has a metric '{metric}' (metrics logged: {logged}).")
        return ranked
    metrics = [metric, *sorted({m for run in ranked for m in run.data.metrics} - {metric})]
    rows = [
        {"#": rank, "run name": run.info.run_name, "run id": run.info.run_id[:8]}
        | {name: run.data.params.get(name) for name in plumbing.differing_params(ranked)}
        | {name: run.data.metrics.get(name) for name in metrics[:5]}
        for rank, run in enumerate(ranked, start=1)
    ]
    print(pd.DataFrame(rows).to_string(index=False, na_rep="-", float_format="{:.3f}".format))
    if unranked := [run.info.run_name for run in runs if metric not in run.data.metrics]:
        print(f"Not ranked, no metric '{metric}': " + ", ".join(unranked))
    return ranked


# %%
# 4. Compare, export, and the best run
# ------------------------------------
# One ``try`` for all store work: MLflow's reason for a bad filter or metric, else one sentence.
def find_experiment(client, name):
    experiments = client.search_experiments(order_by=["name ASC"])
    if found := [experiment for experiment in experiments if experiment.name == name]:
        return experiments, found[0]
    listed = ", ".join(f"'{experiment.name}'" for experiment in experiments)
    if name == EXPERIMENT_NAME:
        listed += " (run `python train_wine_elasticnet.py` to create it)"
    raise SystemExit(f"There is no experiment named '{name}'; the experiments are: {listed}.")


def main(argv=None):
    parser, args = parse_args(argv)
    uri = plumbing.connect("There are no runs yet: run `python train_wine_elasticnet.py` first.")
    client = MlflowClient(uri)
    try:
        experiments, experiment = find_experiment(client, args.experiment)
        metric, order = RANKING.get(experiment.name, (None, "ASC"))
        metric, order = args.metric or metric, args.order or order
        if metric is None:
            parser.error(f"'{experiment.name}' has no default metric: pass --metric NAME")
        order_by = [f"metrics.{metric} {order}", "attributes.start_time ASC"]
        ids, limit = [experiment.experiment_id], args.max_results
        runs, pages, more = search_all_pages(client, ids, args.filter, order_by, limit)
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
        plumbing.write_csv(table, args.csv)  # one sentence if the disk is full, say
        print(f"Wrote {len(table)} runs with all their params, metrics and tags to {args.csv}")
    ranked = print_ranking(runs, metric)
    if ranked and args.plot:  # one panel per numeric param that differs, the best in orange
        plumbing.plot_params(ranked, metric, order, args.plot)
    best = ranked[0] if ranked else None
    if best:  # the best run, its model (``search_logged_models``) and where to see it
        value = f"{metric} = {best.data.metrics[metric]:.3f}"
        print(f"\nBest run by {order_by[0]}: {best.info.run_name} {best.info.run_id} {value}")
        for model in client.search_logged_models(ids, f"source_run_id = '{best.info.run_id}'"):
            print(f"Its model: python load_model.py --model-uri {model.model_uri}")
        print("\n".join(plumbing.where_to_look(best)))
    return {"experiment": experiment, "runs": runs, "ranked": ranked, "best_run": best}


if __name__ == "__main__":
    main()
