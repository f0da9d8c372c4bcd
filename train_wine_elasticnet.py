"""Lesson 2: one run per try, so that runs can be compared.

An ElasticNet regression predicts the quality score (3 to 8) that tasters gave
1,599 red wines from eleven lab measurements (acidity, sugar, alcohol, ...), the
UCI Wine Quality data. Every invocation is one MLflow run in the experiment
``wine-quality-elasticnet`` with its settings (params ``alpha`` and
``l1_ratio``), its errors on held-out wines (metrics ``rmse``, ``r2``, ``mae``),
the model, and the data set it read (source and digest). Run it a few times with
other settings and compare the runs side by side in the UI.

The first run downloads the data from UCI once and keeps it in ``.data/``;
``--data`` reads a local copy (comma- or semicolon-separated) instead:

    python train_wine_elasticnet.py
    python train_wine_elasticnet.py --alpha 0.1 --l1-ratio 0.2
    python train_wine_elasticnet.py --data path/to/winequality-red.csv
"""

# %%
# Settings
# --------
# Defaults for the command-line flags. ``alpha`` is how strongly large
# coefficients are penalised (0 = not at all); ``l1_ratio`` mixes the two
# kinds of penalty: 0 is pure ridge (shrink every coefficient), 1 is pure
# lasso (drop whole features).
import argparse
import math

ALPHA = 0.5
L1_RATIO = 0.5
TEST_SIZE = 0.25
SEED = 42

EXPERIMENT_NAME = "wine-quality-elasticnet"
WINE_URL = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv"
)
DOWNLOAD_TIMEOUT = 10  # seconds; offline, say so quickly instead of hanging


def non_negative_number(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


def closed_fraction(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (inclusive), got {text}")
    return value


def open_fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--alpha",
        type=non_negative_number,
        default=ALPHA,
        help=f"strength of the penalty on large coefficients, 0 = none (default {ALPHA})",
    )
    parser.add_argument(
        "--l1-ratio",
        type=closed_fraction,
        default=L1_RATIO,
        help=f"mix of the penalties: 0 = ridge, 1 = lasso (default {L1_RATIO})",
    )
    parser.add_argument(
        "--test-size",
        type=open_fraction,
        default=TEST_SIZE,
        help=f"share of wines held out for testing (default {TEST_SIZE})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"random seed for the train/test split (default {SEED})",
    )
    parser.add_argument(
        "--data",
        metavar="PATH_OR_URL",
        help="the red-wine CSV to read, a file or an http(s) URL "
        "(default: download it from UCI once and keep it in .data/)",
    )
    return parser.parse_args(argv)


# %%
# 1. The data, checked before anything is logged
# ----------------------------------------------
# A missing or wrong file should stop the script with one sentence, not leave a
# half-filled run behind, so the data is read and checked before the run starts.
# UCI serves the file semicolon-separated; other copies use commas.
import http.client
import io
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

import workshop_store

CACHE_PATH = workshop_store.REPO_ROOT / ".data" / "winequality-red.csv"
FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
TARGET = "quality"
DATA_HINT = "pass a copy of winequality-red.csv with --data"


def load_wine_data(source=None):
    """The red-wine table (all columns float) from a file path or http(s) URL.

    Without ``source``: UCI's copy, downloaded on first use and read from
    ``CACHE_PATH`` afterwards. Stops with a one-sentence SystemExit when the
    data cannot be read or is not this data set.
    """
    if source is None:
        if CACHE_PATH.is_file():
            cache_hint = f"delete it to download again, or {DATA_HINT}"
            return parse_wine_csv(read_file(CACHE_PATH), CACHE_PATH, cache_hint)
        raw = download(WINE_URL)
        wine = parse_wine_csv(raw, WINE_URL)  # checked first: a broken download is not kept
        save_to_cache(raw)
        return wine
    if str(source).startswith(("http://", "https://")):
        return parse_wine_csv(download(source), source)
    return parse_wine_csv(read_file(source), source)


def download(url):
    print(f"Downloading the wine data from {url}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            return response.read()
    except urllib.error.HTTPError as error:  # the server answered, but not with the file
        problem = f"HTTP error {error.code}"
    except (OSError, http.client.HTTPException) as error:  # offline, timeout, cut off
        problem = getattr(error, "reason", None) or error
    raise SystemExit(
        f"Could not download the wine data from {url} ({problem}); "
        f"connect to the internet or {DATA_HINT}."
    )


def read_file(path):
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise SystemExit(f"There is no file {path}; {DATA_HINT}.") from None
    except OSError as error:
        raise SystemExit(f"Could not read {path} ({error.strerror}); {DATA_HINT}.") from None


def save_to_cache(raw):
    """Write a temporary file, then rename it: an interrupted write leaves no broken cache."""
    try:
        CACHE_PATH.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=CACHE_PATH.parent, suffix=".part", delete=False
        ) as part:
            part.write(raw)
        os.replace(part.name, CACHE_PATH)
        print(f"Saved a copy in {CACHE_PATH}")
    except OSError as error:  # a read-only folder, say: this run goes on, the next downloads again
        print(f"Could not save a copy in {CACHE_PATH} ({error.strerror})")


def parse_wine_csv(raw, source, hint=DATA_HINT):
    def stop(problem):
        raise SystemExit(f"{source} {problem}; {hint}.")

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        stop("is not a text CSV file")
    if not text.strip():
        stop("is empty")
    header = text.splitlines()[0]
    try:
        table = pd.read_csv(io.StringIO(text), sep=";" if ";" in header else ",")
    except pd.errors.ParserError as error:
        stop(f"is not a well-formed CSV file ({str(error).strip()})")
    table.columns = table.columns.str.strip()
    missing = [name for name in [*FEATURES, TARGET] if name not in table.columns]
    if missing:
        named = ", ".join(repr(name) for name in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        stop(f"is not the red-wine quality data: it has no column {named}{more}")
    if table.empty:
        stop("has a header but no rows")
    wine = table[[*FEATURES, TARGET]].apply(pd.to_numeric, errors="coerce")
    for name in wine.columns:
        bad_rows = wine.index[wine[name].isna()]
        if len(bad_rows):
            line = bad_rows[0] + 2  # 1-based, after the header line
            stop(f"has a missing or non-numeric {name!r} on line {line}")
    # Float throughout, the target too: a regression predicts fractional scores.
    return wine.astype(float)


# %%
# 2. The MLflow run
# -----------------
# One invocation, one run. The run name carries the settings, so a list of
# runs reads like a list of experiments tried.
import warnings
from importlib.metadata import version

import mlflow
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(argv=None):
    args = parse_args(argv)
    wine = load_wine_data(args.data)
    # Where the data came from, as MLflow should record it. Building the source
    # object ourselves avoids MLflow guessing (and warning) about a plain path.
    if args.data is None or args.data.startswith(("http://", "https://")):
        source = HTTPDatasetSource(args.data or WINE_URL)
    else:
        source = LocalArtifactDatasetSource(str(Path(args.data).resolve()))
    X_train, X_test, y_train, y_test = train_test_split(
        wine[FEATURES], wine[TARGET], test_size=args.test_size, random_state=args.seed
    )
    run_name = f"elasticnet_a{args.alpha:g}_l{args.l1_ratio:g}"

    experiment = workshop_store.use_experiment(EXPERIMENT_NAME)
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(
            {
                "alpha": args.alpha,
                "l1_ratio": args.l1_ratio,
                "test_size": args.test_size,
                "seed": args.seed,
            }
        )
        mlflow.set_tags({"model_type": "ElasticNet", "dataset": "UCI wine quality (red)"})
        # The whole table as the run's input. Its digest is a hash of the
        # content: two runs with the same digest read exactly the same wines.
        # The split inside it is fixed by the test_size and seed params.
        mlflow.log_input(
            mlflow.data.from_pandas(wine, name="winequality-red", targets=TARGET, source=source)
        )

        # The penalty treats every coefficient alike, so the features are put on
        # one scale first; the scaler travels inside the logged model.
        model = make_pipeline(
            StandardScaler(), ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio)
        )
        with warnings.catch_warnings():
            # With alpha 0 (no penalty) scikit-learn suggests LinearRegression
            # instead; the fit is the same, so that one hint is not shown.
            warnings.filterwarnings("ignore", "With alpha=0", UserWarning)
            model.fit(X_train, y_train)

        # Metrics, all in one call: errors in quality points on unseen wines.
        y_pred = model.predict(X_test)
        metrics = {
            "rmse": root_mean_squared_error(y_test, y_pred),
            "r2": r2_score(y_test, y_pred),
            "mae": mean_absolute_error(y_test, y_pred),
        }
        mlflow.log_metrics(metrics)

        # The model, as in demo.py: skops format (a linear model and a scaler
        # need no trusted types), signature, input example, pinned requirements.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            pip_requirements=[
                f"{package}=={version(package)}" for package in ("mlflow", "scikit-learn", "skops")
            ],
        )

    # %%
    # 3. What to look at next
    # -----------------------
    print(f"Run {run.info.run_id} ({run_name}) in experiment '{experiment.name}'")
    for name, value in metrics.items():
        print(f"  {name:<5} {value:.3f}")
    print(f"Model URI: {model_info.model_uri}")
    print("Try other settings:  python train_wine_elasticnet.py --alpha 0.1 --l1-ratio 0.2")
    print("Compare the runs:    python compare_runs.py")
    for line in workshop_store.where_to_look(run):
        print(line)
    return {
        "run_id": run.info.run_id,
        "run_name": run_name,
        "model_uri": model_info.model_uri,
        "metrics": metrics,
    }


if __name__ == "__main__":
    main()
