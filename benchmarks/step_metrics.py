"""Time step metrics logged two ways into the store at MLFLOW_TRACKING_URI; write JSON.

    MLFLOW_TRACKING_URI=sqlite:///steps.db python benchmarks/step_metrics.py --result steps.json

The four metrics of track_training_curves.py at points/4 steps (a fixed curve), each
time into a new run: with ``log_batch``, 1,000 points per call, as that lesson sends
them, and one ``log_metric`` call per value, which stops after ``--budget`` seconds.
Each run is read back and must hold every point.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

NAMES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def log_batch(run_id, steps, budget):
    client, pending = MlflowClient(), []
    for step in range(steps):
        timestamp = int(time.time() * 1000)
        for i, name in enumerate(NAMES):
            pending.append(Metric(name, 1 / (1 + step + i), timestamp, step))
        if len(pending) >= 1000 or step == steps - 1:  # MLflow's limit for one request
            client.log_batch(run_id, metrics=pending)
            pending = []
    return steps


def log_metric(run_id, steps, budget):
    started = time.perf_counter()
    for step in range(steps):
        for i, name in enumerate(NAMES):
            mlflow.log_metric(name, 1 / (1 + step + i), step=step)
        if time.perf_counter() - started > budget:
            return step + 1
    return steps


def measure(method, steps, budget):
    """Log with ``method`` into a new run; return the points it logged and the seconds taken."""
    with mlflow.start_run(run_name=method.__name__) as run:
        started = time.perf_counter()
        done = method(run.info.run_id, steps, budget)
        seconds = time.perf_counter() - started
    stored = [len(MlflowClient().get_metric_history(run.info.run_id, name)) for name in NAMES]
    if stored != [done] * len(NAMES):
        raise SystemExit(f"{method.__name__}: stored {stored} points per metric, not {done}")
    return done * len(NAMES), seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000, help="points in the curve")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of log_batch")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds for a slow method")
    parser.add_argument("--result", required=True, help="write the times here (JSON)")
    args = parser.parse_args()
    mlflow.set_experiment("step-metrics-benchmark")  # connects to the store before timing
    steps, results = args.points // len(NAMES), {}
    for method, repeats in ((log_batch, args.repeats), (log_metric, 1)):
        measured = [measure(method, steps, args.budget) for _ in range(repeats)]
        median = statistics.median(seconds for _, seconds in measured)
        results[method.__name__] = {"points": measured[0][0], "median": median}
    Path(args.result).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
