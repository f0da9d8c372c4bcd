"""Lesson 2: one run per try, so that runs can be compared.

An ElasticNet regression predicts the quality score (3 to 8) that tasters gave
1,599 red wines from eleven lab measurements (acidity, sugar, alcohol, ...),
the UCI Wine Quality data in data/winequality-red.csv. Every invocation is one
MLflow run in the experiment ``wine-quality-elasticnet`` with its settings
(params ``alpha`` and ``l1_ratio``), its errors on held-out wines (metrics
``rmse``, ``r2``, ``mae``), the model and the data it read. Run it a few times
with other settings, then compare the runs in the UI or with compare_runs.py.

    python train_wine_elasticnet.py
    python train_wine_elasticnet.py --alpha 0.1 --l1-ratio 0.2
    python train_wine_elasticnet.py --data path/or/url/of/winequality-red.csv
"""

# %%
# Settings
# --------
# ``alpha`` is how strongly large coefficients are penalised (0 = not at all);
# ``l1_ratio`` mixes the two kinds of penalty: 0 is pure ridge (shrink every
# coefficient), 1 is pure lasso (drop whole features).
import plumbing

ALPHA = 0.5
L1_RATIO = 0.5
TEST_SIZE = 0.25
SEED = 42
EXPERIMENT_NAME = "wine-quality-elasticnet"


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--alpha", type=plumbing.non_negative_number, default=ALPHA, help="penalty, 0 = none")
    add("--l1-ratio", type=plumbing.closed_fraction, default=L1_RATIO, help="0 ridge, 1 lasso")
    add("--test-size", type=plumbing.holdout_fraction, default=TEST_SIZE, help="share held out")
    add("--seed", type=plumbing.seed, default=SEED, help="seed for the train/test split")
    add("--data", default=str(plumbing.WINE_CSV), help="the red-wine CSV, a file or http(s) URL")
    return parser.parse_args(argv)


# %%
# 1. The data, checked before anything is logged
# ----------------------------------------------
# A missing or wrong file stops the script with one sentence before a run
# starts, so no half-filled run is left behind. MLflow records where the data
# came from as a dataset *source*: a URL, or a file on this computer.
from pathlib import Path

from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.sources import LocalArtifactDatasetSource
from sklearn.model_selection import train_test_split


def load_data(data, test_size, seed):
    """The training wines, the held-out wines, and where they came from."""
    wine = plumbing.load_wine_data(data)
    if data.startswith(("http://", "https://")):
        source = HTTPDatasetSource(data)
    else:
        source = LocalArtifactDatasetSource(Path(data).resolve().as_posix())
    training, held_out = train_test_split(wine, test_size=test_size, random_state=seed)
    return training, held_out, source


# %%
# 2. The model and its errors
# ---------------------------
# The penalty treats every coefficient alike, so the features are put on one
# scale first; the scaler travels inside the logged model. The metrics are
# errors in quality points on wines the model never saw.
import warnings

from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def fit_and_score(args, X_train, y_train, X_test, y_test):
    model = make_pipeline(StandardScaler(), ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio))
    with warnings.catch_warnings():
        # With alpha 0 (no penalty) scikit-learn suggests LinearRegression
        # instead; the fit is the same, so that one hint is not shown.
        warnings.filterwarnings("ignore", "With alpha=0", UserWarning)
        model.fit(X_train, y_train)
    y_pred = model.predict(X_test)
    metrics = {
        "rmse": root_mean_squared_error(y_test, y_pred),
        "r2": r2_score(y_test, y_pred),
        "mae": mean_absolute_error(y_test, y_pred),
    }
    return model, y_pred, metrics


# %%
# 3. The MLflow run
# -----------------
# One invocation, one run. The run name carries the settings, so a list of
# runs reads like a list of the experiments tried.
import mlflow
from mlflow.models import infer_signature

FEATURES, TARGET = plumbing.WINE_FEATURES, plumbing.WINE_TARGET


def main(argv=None):
    args = parse_args(argv)
    training, held_out, source = load_data(args.data, args.test_size, args.seed)
    X_train, y_train = training[FEATURES], training[TARGET]
    X_test, y_test = held_out[FEATURES], held_out[TARGET]
    run_name = f"elasticnet_a{args.alpha:g}_l{args.l1_ratio:g}"

    experiment = plumbing.use_experiment(EXPERIMENT_NAME)
    with mlflow.start_run(run_name=run_name) as run:
        params = {"alpha": args.alpha, "l1_ratio": args.l1_ratio}
        mlflow.log_params(params | {"test_size": args.test_size, "seed": args.seed})
        mlflow.set_tags({"model_type": "ElasticNet", "dataset": "UCI wine quality (red)"})
        # The rows trained and scored on. A dataset's digest is a hash of its
        # content: two runs with the same digest used exactly the same wines.
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            name = f"winequality-red_{context}"
            data = mlflow.data.from_pandas(rows, name=name, targets=TARGET, source=source)
            mlflow.log_input(data, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")  # for load_model.py

        model, y_pred, metrics = fit_and_score(args, X_train, y_train, X_test, y_test)
        mlflow.log_metrics(metrics)  # all of them in one call

        # The model, as in demo.py: skops, a signature, an input example and
        # pinned requirements (a linear model and a scaler need no trusted types).
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            pip_requirements=plumbing.REQUIREMENTS,
        )

    next_steps = [
        "Try other settings:  python train_wine_elasticnet.py --alpha 0.1 --l1-ratio 0.2",
        "Compare the runs:    python compare_runs.py",
    ]
    plumbing.print_summary(run, experiment, metrics, model_info.model_uri, next_steps)
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri, "metrics": metrics}


if __name__ == "__main__":
    main()
