"""How much of a served prediction is the model itself: predict() timed in-process.

Used by ``benchmarks/run.py`` next to the HTTP measurements of ``/invocations``:

    python benchmarks/predict_latency.py --tracking-uri sqlite:///mlflow.db \
        --model-uri models:/iris_classifier@champion --result result.json

Loads the model as the scoring server does (``mlflow.pyfunc.load_model``) and
times ``predict`` on one row and on 100 rows; then the same for the bare
scikit-learn model as logged, and with ``n_jobs=1`` (one thread) if the model
has an ``n_jobs`` setting, because a forest trained with ``n_jobs=-1`` also
predicts with a pool of threads, which costs more than it saves on a few rows.
With ``--largest-of NAME`` it also times one row through the bare forest of
that registered model's version with the most trees, to show what the
model's size costs.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient


def median_ms(function, repeats):
    for _ in range(5):  # warm-up
        function()
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model-uri", required=True)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--result", required=True)
    parser.add_argument("--largest-of", help="a registered model whose versions have n_estimators")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_iris

    mlflow.set_tracking_uri(args.tracking_uri)
    features = load_iris(as_frame=True).data
    pyfunc_model = mlflow.pyfunc.load_model(args.model_uri)
    sklearn_model = mlflow.sklearn.load_model(args.model_uri)
    n_jobs = sklearn_model.get_params().get("n_jobs", "absent")
    result = {"n_jobs": n_jobs, "n_estimators": sklearn_model.get_params().get("n_estimators")}
    for size in (1, 100):
        rows = features.head(size)
        result[f"pyfunc_{size}"] = median_ms(lambda r=rows: pyfunc_model.predict(r), args.repeats)
        result[f"sklearn_{size}"] = median_ms(lambda r=rows: sklearn_model.predict(r), args.repeats)
    if n_jobs not in ("absent", None, 1):
        sklearn_model.set_params(n_jobs=1)
        for size in (1, 100):
            rows = features.head(size)
            result[f"sklearn_one_thread_{size}"] = median_ms(
                lambda r=rows: sklearn_model.predict(r), args.repeats
            )
    if args.largest_of:
        versions = MlflowClient().search_model_versions(f"name = '{args.largest_of}'")
        largest = max(versions, key=lambda v: int(v.tags.get("n_estimators", "0")))
        forest = mlflow.sklearn.load_model(f"models:/{args.largest_of}/{largest.version}")
        result["largest"] = {
            "version": largest.version,
            "n_estimators": forest.get_params().get("n_estimators"),
            "sklearn_1": median_ms(lambda: forest.predict(features.head(1)), args.repeats),
        }
    Path(args.result).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
