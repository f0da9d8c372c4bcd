"""Fill a tracking store with finished runs like train_wine_elasticnet.py's, for compare_runs.py.

    MLFLOW_TRACKING_URI=sqlite:///runs.db python benchmarks/fill_store.py --runs 1000

Each run gets that lesson's params, metrics and tag in one ``log_batch`` call; the
metrics come from a formula, not from models: the store exists to time searches.
"""

import argparse
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--runs", type=int, default=1000)
args = parser.parse_args()

client = MlflowClient()
experiment_id = client.create_experiment("wine-quality-elasticnet")
for index in range(args.runs):
    alpha, l1_ratio = round(0.01 * (1 + index % 100), 2), round(0.1 * (index // 100 % 11), 1)
    rmse, now = 0.62 + 0.2 * alpha + 0.01 * l1_ratio, int(time.time() * 1000)
    params = {"alpha": alpha, "l1_ratio": l1_ratio, "test_size": 0.25, "seed": 42}
    metrics = {"rmse": rmse, "r2": 0.4 - rmse / 3, "mae": 0.8 * rmse}
    run = client.create_run(experiment_id, run_name=f"elasticnet_a{alpha:g}_l{l1_ratio:g}")
    client.log_batch(
        run.info.run_id,
        params=[Param(key, str(value)) for key, value in params.items()],
        metrics=[Metric(key, value, now, 0) for key, value in metrics.items()],
        tags=[RunTag("model_type", "ElasticNet")],
    )
    client.set_terminated(run.info.run_id)
