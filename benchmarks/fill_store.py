"""Fill a tracking store with many finished runs that look like train_wine_elasticnet.py's.

Used by ``benchmarks/run.py`` to give compare_runs.py an experiment of 1,000 runs:

    python benchmarks/fill_store.py --tracking-uri sqlite:///mlflow.db --runs 1000

Each run gets the lesson's params, metrics and tags in one ``log_batch`` call.
The metric values come from a simple formula, not from models: this store
exists to time searches, and training 1,000 models would only make it slow to
build. Runs are created with MlflowClient, three calls each.
"""

import argparse
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

EXPERIMENT_NAME = "wine-quality-elasticnet"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--artifact-location", help="artifact folder for a new experiment")
    args = parser.parse_args(argv)

    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        experiment_id = client.create_experiment(
            EXPERIMENT_NAME, artifact_location=args.artifact_location
        )
    else:
        experiment_id = experiment.experiment_id
    started = time.perf_counter()
    for index in range(args.runs):
        alpha = round(0.01 * (1 + index % 100), 2)
        l1_ratio = round(0.1 * (index // 100 % 11), 1)
        rmse = 0.62 + 0.2 * alpha + 0.01 * l1_ratio + 0.0001 * (index % 7)
        run_name = f"elasticnet_a{alpha:g}_l{l1_ratio:g}"
        run = client.create_run(experiment_id, run_name=run_name)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            params=[
                Param("alpha", str(alpha)),
                Param("l1_ratio", str(l1_ratio)),
                Param("test_size", "0.25"),
                Param("seed", "42"),
            ],
            metrics=[
                Metric("rmse", rmse, now, 0),
                Metric("r2", 0.4 - rmse / 3, now, 0),
                Metric("mae", rmse * 0.8, now, 0),
            ],
            tags=[
                RunTag("model_type", "ElasticNet"),
                RunTag("dataset", "UCI wine quality (red)"),
            ],
        )
        client.set_terminated(run.info.run_id)
    seconds = time.perf_counter() - started
    print(f"Created {args.runs} runs in {seconds:.1f} s in experiment {experiment_id}")
    return experiment_id


if __name__ == "__main__":
    main()
