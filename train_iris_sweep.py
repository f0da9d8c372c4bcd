"""Lesson 3: a sweep of runs, compared and registered, with a champion alias.

A random forest learns the three iris species from four flower measurements
(scikit-learn's bundled iris data, 150 flowers, no download). It is trained
once per configuration of a small grid of settings; each configuration is its
own MLflow run, and all of them sit under one parent run for the sweep, so the
UI shows them together. Every run's model becomes a new version of the
registered model ``iris_classifier``, and the best version carries the alias
``champion``: the name that other code loads (``models:/iris_classifier@champion``)
while the version behind it changes.

Run it from the repository root or any other folder:

    python train_iris_sweep.py
    python train_iris_sweep.py --grid "10:2,300:4"

then compare the runs with compare_runs.py or in the `mlflow ui` it prints.
"""

# %%
# Settings
# --------
# The grid: (n_estimators, max_depth) pairs, one run each, from a small
# forest to a large one. Edit it here or pass ``--grid``. On 150 flowers the
# small forests often score as well as the large ones, and the champion rule
# (section 4) then prefers the smaller model. The held-out split is fixed
# (same rows, same seed) in every sweep, so accuracies from different sweeps
# are comparable, and that is what lets the champion alias compare a new
# sweep with the versions before it.
import argparse

GRID = [(10, 2), (50, 3), (100, 5), (200, 10)]
TEST_SIZE = 0.3
SPLIT_SEED = 42
SEED = 42

EXPERIMENT_NAME = "iris_classification"
MODEL_NAME = "iris_classifier"
CHAMPION_ALIAS = "champion"
RUN_TAGS = {"team": "ml-workshop", "project": "iris-species", "model_family": "random_forest"}
# Where scikit-learn's bundled copy of the data set comes from.
IRIS_SOURCE = "https://archive.ics.uci.edu/dataset/53/iris"


def grid_text(grid):
    return ",".join(f"{n_estimators}:{max_depth}" for n_estimators, max_depth in grid)


def parse_grid(text):
    """``"50:3,100:5"`` -> ``[(50, 3), (100, 5)]``: whole numbers of at least 1, no repeats."""
    grid = []
    for pair in text.split(","):
        n_estimators, colon, max_depth = pair.strip().partition(":")
        if not (colon and n_estimators.isdigit() and max_depth.isdigit()):
            raise argparse.ArgumentTypeError(
                f"expected N_ESTIMATORS:MAX_DEPTH pairs like 50:3,100:5, got {pair.strip()!r}"
            )
        config = (int(n_estimators), int(max_depth))
        if min(config) < 1:
            raise argparse.ArgumentTypeError(
                f"n_estimators and max_depth must be at least 1, got {pair.strip()!r}"
            )
        if config in grid:
            raise argparse.ArgumentTypeError(f"lists {pair.strip()!r} twice")
        grid.append(config)
    return grid


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--grid",
        type=parse_grid,
        default=GRID,
        help=f"comma-separated N_ESTIMATORS:MAX_DEPTH pairs (default {grid_text(GRID)})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help=f"random seed for the forests; the test split never changes (default {SEED})",
    )
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# 30% of the flowers are held out for testing, stratified so each species
# keeps its share. With 45 test flowers, accuracy moves in steps of 1/45, so
# several configurations often tie: the champion rule below settles ties.
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split


def load_data():
    data = load_iris(as_frame=True)
    split = train_test_split(
        data.data, data.target, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=data.target
    )
    return data, *split


# %%
# 2. A plot per run
# -----------------
# The confusion matrix shows which species the forest mixes up (usually
# versicolor and virginica, whose flowers overlap in size).
import matplotlib

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt
from sklearn.metrics import ConfusionMatrixDisplay


def confusion_matrix_figure(y_true, y_pred, class_names, title):
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, display_labels=class_names, cmap="Blues", colorbar=False, ax=ax
    )
    ax.set_title(title)
    return fig


# %%
# 3. One child run per configuration
# ----------------------------------
# ``nested=True`` makes the run a child of the active (parent) run: MLflow
# records the parent's id in the tag ``mlflow.parentRunId`` and the UI folds
# the children under the parent. ``registered_model_name`` logs the model and
# registers it as the next version of ``iris_classifier`` in one call.
from importlib.metadata import version

import mlflow
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

PIP_REQUIREMENTS = [
    f"{package}=={version(package)}" for package in ("mlflow", "scikit-learn", "skops")
]


def train_and_log(n_estimators, max_depth, seed, data, X_train, X_test, y_train, y_test, dataset):
    run_name = f"rf_n{n_estimators}_d{max_depth}"
    with mlflow.start_run(run_name=run_name, nested=True) as run:
        mlflow.log_params(
            {
                "n_estimators": n_estimators,
                "max_depth": max_depth,
                "model_type": "RandomForestClassifier",
                "seed": seed,
                "train_samples": len(X_train),
                "test_samples": len(X_test),
                "n_features": X_train.shape[1],
                "n_classes": len(data.target_names),
            }
        )
        mlflow.set_tags(RUN_TAGS)
        mlflow.log_input(dataset, context="training")

        # One thread, as in demo.py: faster on data this small, and the
        # champion is served, where each request would pay for starting threads.
        model = RandomForestClassifier(
            n_estimators=n_estimators, max_depth=max_depth, random_state=seed
        )
        model.fit(X_train, y_train)

        # Weighted averages: each species' score counts by its share of the
        # test set. zero_division=0 scores a species the model never predicts
        # as 0 instead of warning (only very small forests do that).
        y_pred = model.predict(X_test)
        metrics = {
            "accuracy": accuracy_score(y_test, y_pred),
            "f1_score": f1_score(y_test, y_pred, average="weighted", zero_division=0),
            "precision": precision_score(y_test, y_pred, average="weighted", zero_division=0),
            "recall": recall_score(y_test, y_pred, average="weighted", zero_division=0),
        }
        mlflow.log_metrics(metrics)

        fig = confusion_matrix_figure(
            y_test, y_pred, data.target_names, f"Confusion matrix, {run_name} (test set)"
        )
        mlflow.log_figure(fig, "plots/confusion_matrix.png")
        plt.close(fig)

        # As in demo.py: skops instead of pickle, a signature, an input example
        # and pinned requirements. The version number comes back in ModelInfo.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=MODEL_NAME,
        )
    return {
        "run_id": run.info.run_id,
        "run_name": run_name,
        "n_estimators": n_estimators,
        "max_depth": max_depth,
        "metrics": metrics,
        "version": str(model_info.registered_model_version),
    }


# %%
# 4. The registry: version tags, a description and the champion alias
# --------------------------------------------------------------------
# Registry *stages* (Staging/Production) are deprecated in MLflow 3. Aliases
# replace them: a named pointer to one version that you move when a better
# version arrives, while ``models:/iris_classifier@champion`` stays the same
# for whoever loads it. Version tags hold facts to filter and compare by.
#
# The champion rule, applied to this sweep's best version (the challenger)
# and the current champion: higher test accuracy wins; on a tie, fewer trees,
# then shallower trees (the simpler model is cheaper and less likely to have
# fitted noise); on a full tie the older version keeps the alias. A version
# missing these tags (registered by hand) loses to any version that has them.
from mlflow import MlflowClient

MODEL_DESCRIPTION = (
    "Random forests that tell the three iris species apart from four flower measurements, "
    "one version per run of train_iris_sweep.py. The alias 'champion' points at the version "
    "with the best test accuracy (ties: fewer trees, then shallower, then older)."
)


def version_tags(result):
    return {
        "accuracy": f"{result['metrics']['accuracy']:.4f}",
        "n_estimators": str(result["n_estimators"]),
        "max_depth": str(result["max_depth"]),
        "run_name": result["run_name"],
    }


def ranking_key(tags, version_number):
    """Sorts better versions first: the champion rule as a tuple."""
    return (
        -float(tags.get("accuracy", "-1")),
        int(tags.get("n_estimators", "1000000")),
        int(tags.get("max_depth", "1000000")),
        int(version_number),
    )


def current_champion(client):
    """The version the alias points at, or None before the first sweep sets it."""
    aliases = client.get_registered_model(MODEL_NAME).aliases
    if CHAMPION_ALIAS not in aliases:
        return None
    return client.get_model_version(MODEL_NAME, aliases[CHAMPION_ALIAS])


# %%
# 5. The sweep
# ------------
# The parent run holds what the whole sweep shares (the grid, the split) and
# the best accuracy; each configuration runs inside it.
import time
from datetime import datetime

import workshop_store


def main(argv=None):
    args = parse_args(argv)
    data, X_train, X_test, y_train, y_test = load_data()
    # The training rows as the runs' input; species as names, readable in the UI.
    dataset = mlflow.data.from_pandas(
        X_train.assign(species=data.target_names[y_train]),
        name="iris_train",
        targets="species",
        source=IRIS_SOURCE,
    )

    experiment = workshop_store.use_experiment(EXPERIMENT_NAME)
    client = MlflowClient()
    started = time.perf_counter()
    sweep_name = f"sweep_{datetime.now():%Y%m%d_%H%M%S}"
    print(f"Sweep {sweep_name} over the grid {grid_text(args.grid)}")
    with mlflow.start_run(run_name=sweep_name) as parent:
        mlflow.log_params(
            {
                "grid": grid_text(args.grid),
                "n_configurations": len(args.grid),
                "test_size": TEST_SIZE,
                "split_seed": SPLIT_SEED,
                "stratify": True,
                "seed": args.seed,
            }
        )
        mlflow.set_tags(RUN_TAGS)
        results = []
        for n_estimators, max_depth in args.grid:
            result = train_and_log(
                n_estimators, max_depth, args.seed, data, X_train, X_test, y_train, y_test, dataset
            )
            for key, value in version_tags(result).items():
                client.set_model_version_tag(MODEL_NAME, result["version"], key, value)
            results.append(result)
            print(
                f"  {result['run_name']:<14} accuracy {result['metrics']['accuracy']:.3f}"
                f"  -> {MODEL_NAME} version {result['version']}"
            )
        results.sort(key=lambda r: ranking_key(version_tags(r), r["version"]))
        mlflow.log_metric("best_accuracy", results[0]["metrics"]["accuracy"])

        client.update_registered_model(MODEL_NAME, description=MODEL_DESCRIPTION)
        challenger = results[0]
        champion = current_champion(client)
        if champion is None or ranking_key(version_tags(challenger), challenger["version"]) < (
            ranking_key(champion.tags, champion.version)
        ):
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, challenger["version"])
            champion_version = challenger["version"]
        else:
            champion_version = str(champion.version)
    seconds = time.perf_counter() - started

    # %%
    # 6. What to look at next
    # -----------------------
    previous = None if champion is None else str(champion.version)
    print(f"\nSweep took {seconds:.1f} s. Ranked by the champion rule:")
    print(f"  {'rank':<5}{'run':<16}{'accuracy':>9}{'f1_score':>10}{'version':>9}")
    for rank, result in enumerate(results, start=1):
        print(
            f"  {rank:<5}{result['run_name']:<16}{result['metrics']['accuracy']:>9.3f}"
            f"{result['metrics']['f1_score']:>10.3f}{result['version']:>9}"
        )
    if champion_version == previous:
        print(f"The champion stays version {champion_version}: this sweep did not beat it.")
    elif previous is None:
        print(f"Version {champion_version} is the first champion.")
    else:
        print(f"The champion moves from version {previous} to version {champion_version}.")
    champion_uri = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
    print(f"Champion URI: {champion_uri}")
    print(f"Compare:      python compare_runs.py --experiment {EXPERIMENT_NAME}")
    print(f"Load it:      python load_model.py --model-uri {champion_uri}")
    for line in workshop_store.where_to_look(parent):
        print(line)
    return {
        "experiment_id": experiment.experiment_id,
        "parent_run_id": parent.info.run_id,
        "runs": results,
        "champion_version": champion_version,
        "previous_champion_version": previous,
        "champion_uri": champion_uri,
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()
