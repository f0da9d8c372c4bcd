"""How fast step metrics reach a tracking store, for each way of logging them.

Used by ``benchmarks/run.py``, one fresh process per store and repetition:

    python benchmarks/step_metrics.py --tracking-uri sqlite:///bench.db --points 10000 \
        --result result.json

A training curve of ``--points`` values: ``--metrics`` names (train_loss,
val_loss, ...) at each of points/metrics steps. Each way of logging gets its
own run; afterwards the stored history is read back and must hold every
point, so a method cannot look fast by losing data. The values are a
deterministic curve: this measures logging, not a model.

Sending one value per call is slow enough that 10,000 points would take
minutes; such methods stop after ``--budget`` seconds (at a step boundary)
and the time for all points is extrapolated from the measured rate (marked
in the result).
"""

import argparse
import cProfile
import gc
import json
import os
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

METRIC_NAMES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "lr", "grad_norm")


def curve(step, index):
    return 1.0 / (1.0 + step + index)


def per_value(run_id, steps, names, budget, batch_size):
    """One ``mlflow.log_metric`` call per value, as most tutorials do."""
    started = time.perf_counter()
    for step in range(steps):
        for index, name in enumerate(names):
            mlflow.log_metric(name, curve(step, index), step=step)
        if time.perf_counter() - started > budget:
            return step + 1
    return steps


def per_step(run_id, steps, names, budget, batch_size):
    """One ``mlflow.log_metrics`` call per step with a dict of the step's values."""
    started = time.perf_counter()
    for step in range(steps):
        mlflow.log_metrics({name: curve(step, i) for i, name in enumerate(names)}, step=step)
        if time.perf_counter() - started > budget:
            return step + 1
    return steps


def batches(run_id, steps, names, budget, batch_size):
    """``MlflowClient.log_batch`` with up to ``batch_size`` metrics per call."""
    client = MlflowClient()
    timestamp = int(time.time() * 1000)
    pending = []
    for step in range(steps):
        for index, name in enumerate(names):
            pending.append(Metric(name, curve(step, index), timestamp, step))
        if len(pending) >= batch_size:
            client.log_batch(run_id, metrics=pending)
            pending = []
    if pending:
        client.log_batch(run_id, metrics=pending)
    return steps


def asynchronous(run_id, steps, names, budget, batch_size):
    """``mlflow.log_metric(..., synchronous=False)`` per value, then wait until stored.

    Queued in chunks of 1,000 points, each waited for with ``flush_async_logging``,
    so that a slow store can be stopped after ``budget`` seconds like the others.
    """
    started = time.perf_counter()
    chunk = max(1, 1000 // len(names))
    for first in range(0, steps, chunk):
        for step in range(first, min(first + chunk, steps)):
            for index, name in enumerate(names):
                mlflow.log_metric(name, curve(step, index), step=step, synchronous=False)
        mlflow.flush_async_logging()
        if time.perf_counter() - started > budget:
            return min(first + chunk, steps)
    return steps


def buffered(run_id, steps, names, budget, batch_size):
    """``log_metric(synchronous=False)`` with MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1.

    The logging thread then waits a second between rounds and merges what is
    queued into batches; all points are queued, then waited for once.
    """
    os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
    try:
        for step in range(steps):
            for index, name in enumerate(names):
                mlflow.log_metric(name, curve(step, index), step=step, synchronous=False)
        mlflow.flush_async_logging()
    finally:
        del os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"]
    return steps


# key -> (label, function, points per call for log_batch)
METHODS = {
    "per_value": ("one `log_metric` call per value", per_value, None),
    "per_step": ("one `log_metrics` call per step (dict)", per_step, None),
    "batch_1000": ("`log_batch`, 1,000 points per call", batches, 1000),
    "batch_lesson": ("`log_batch` as track_training_curves.py does", batches, "lesson"),
    "async": ("`log_metric(..., synchronous=False)` per value", asynchronous, None),
    "async_buffered": (
        "the same with `MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1`",
        buffered,
        None,
    ),
}


def measure(method, steps, names, budget, batch_size, experiment_id, profiler=None):
    """Log with one method into a new run; ``profiler`` sees only the logging calls."""
    label, function, size = METHODS[method]
    size = batch_size if size == "lesson" else size
    client = MlflowClient()
    run = client.create_run(experiment_id, run_name=method)
    run_id = run.info.run_id
    with mlflow.start_run(run_id=run_id):
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        done_steps = function(run_id, steps, names, budget, size)
        seconds = time.perf_counter() - started
        if profiler:
            profiler.disable()
    stored = {name: len(client.get_metric_history(run_id, name)) for name in names}
    if set(stored.values()) != {done_steps}:
        raise SystemExit(f"{method}: stored {stored} points, expected {done_steps} per metric")
    points = done_steps * len(names)
    rate = points / seconds
    total = steps * len(names)
    return {
        "method": method,
        "label": label,
        "batch_size": size,
        "points_measured": points,
        "seconds_measured": seconds,
        "points_per_second": rate,
        "seconds_for_all": seconds if done_steps == steps else total / rate,
        "extrapolated": done_steps != steps,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=4, help="metric names per step")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per slow method")
    parser.add_argument("--lesson-batch", type=int, default=1000, help="points per lesson call")
    parser.add_argument("--methods", help=f"comma-separated subset of {','.join(METHODS)}")
    parser.add_argument("--result", required=True, help="write the measurements here (JSON)")
    parser.add_argument("--profile", help="also write a cProfile of the logging calls here")
    args = parser.parse_args(argv)

    names = METRIC_NAMES[: args.metrics]
    steps = args.points // len(names)
    mlflow.set_tracking_uri(args.tracking_uri)
    experiment_id = mlflow.set_experiment("step-metric-throughput").experiment_id
    MlflowClient().search_runs([experiment_id], max_results=1)  # connect before timing
    gc.freeze()  # as the lesson scripts do after their imports (see workshop_store.py)
    chosen = args.methods.split(",") if args.methods else list(METHODS)
    profiler = cProfile.Profile() if args.profile else None
    results = []
    for method in chosen:
        results.append(
            measure(method, steps, names, args.budget, args.lesson_batch, experiment_id, profiler)
        )
    if profiler:
        profiler.dump_stats(args.profile)
    Path(args.result).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
