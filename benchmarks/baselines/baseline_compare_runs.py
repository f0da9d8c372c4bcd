"""Baseline for compare_runs.py, written the way common MLflow tutorials write it.

``mlflow.search_runs`` with a filter and an ordering returns every matching
run as a pandas DataFrame (MLflow pages through the store itself); the
tutorial prints the top rows and the best run. Used by benchmarks/run.py; not
a lesson.

    python benchmarks/baselines/baseline_compare_runs.py --filter "metrics.rmse < 1"
"""

import argparse

import mlflow


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--experiment", default="wine-quality-elasticnet")
    parser.add_argument("--filter", default="")
    parser.add_argument("--order-by", action="append", default=None)
    args = parser.parse_args(argv)

    runs = mlflow.search_runs(
        experiment_names=[args.experiment],
        filter_string=args.filter,
        order_by=args.order_by or ["metrics.rmse ASC"],
    )
    columns = [c for c in runs.columns if c.startswith(("params.", "metrics."))]
    print(f"{len(runs)} runs")
    print(runs[["run_id", *columns]].head(10).to_string(index=False))
    if len(runs):
        print(f"Best run: {runs.iloc[0]['run_id']}")
    return {"runs": len(runs)}


if __name__ == "__main__":
    main()
