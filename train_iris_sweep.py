"""Lesson 3: a sweep of runs, compared and registered, with a champion alias.

A random forest learns the three iris species from four flower measurements, once per
configuration of a grid: one MLflow run each, under one parent run, each model a version of
the registered model ``iris_classifier``. The best carries the alias ``champion``.

    python train_iris_sweep.py
    python train_iris_sweep.py --grid "10:2,300:4"
"""

# %%
# Settings
# --------
# One run per (n_estimators, max_depth) pair, simplest first; ``--seed`` seeds the forests.
import plumbing

GRID = [(10, 2), (50, 3), (100, 5), (200, 10)]
TEST_SIZE = 0.3
SPLIT_SEED = 42
SEED = 42
EXPERIMENT_NAME = "iris_classification"
MODEL_NAME = "iris_classifier"
CHAMPION_ALIAS = "champion"
SOURCE = "https://archive.ics.uci.edu/dataset/53/iris"
DESCRIPTION = "Random forests for the iris species, one version per sweep run; 'champion' is "
DESCRIPTION += "the highest test accuracy (on a tie, the older version keeps it)."


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    grid_help = "comma-separated N_ESTIMATORS:MAX_DEPTH pairs"
    parser.add_argument("--grid", type=plumbing.grid, default=GRID, help=grid_help)
    parser.add_argument("--seed", type=plumbing.seed, default=SEED, help="seed for the forests")
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# The same 45 flowers (30%, stratified) held out every sweep: accuracy moves by 1/45, ties happen.
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split


def load_data():
    data = load_iris(as_frame=True)
    table = data.data.assign(species=data.target_names[data.target])
    return train_test_split(
        table, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=table["species"]
    )


# %%
# 2. One child run per configuration
# ----------------------------------
# ``nested=True`` makes the run a child of the active one (tag ``mlflow.parentRunId``). One
# ``log_model`` call also registers the next version, its ``tags`` set as it is created.
import mlflow
from mlflow.models import infer_signature
from sklearn import metrics as sk
from sklearn.ensemble import RandomForestClassifier


def train_and_log(n_estimators, max_depth, seed, training, held_out):
    X_train, y_train = training.drop(columns="species"), training["species"]
    X_test, y_test = held_out.drop(columns="species"), held_out["species"]
    with mlflow.start_run(run_name=f"rf_n{n_estimators}_d{max_depth}", nested=True) as run:
        mlflow.log_params({"n_estimators": n_estimators, "max_depth": max_depth, "seed": seed})
        mlflow.set_tags({"model_type": "RandomForestClassifier", "dataset": "sklearn iris"})
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            data = mlflow.data.from_pandas(rows, SOURCE, targets="species", name=f"iris_{context}")
            mlflow.log_input(data, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")  # for load_model.py
        model = RandomForestClassifier(n_estimators, max_depth=max_depth, random_state=seed)
        y_pred = model.fit(X_train, y_train).predict(X_test)
        # Averages weighted by each species' share of the test set; one never predicted gets 0.
        average = {"average": "weighted", "zero_division": 0}
        precision, recall, f1, _ = sk.precision_recall_fscore_support(y_test, y_pred, **average)
        metrics = {"accuracy": sk.accuracy_score(y_test, y_pred), "f1_score": f1}
        metrics |= {"precision": precision, "recall": recall}
        mlflow.log_metrics(metrics)
        tags = {"accuracy": f"{metrics['accuracy']:.4f}", "n_estimators": str(n_estimators)}
        tags |= {"max_depth": str(max_depth), "run_name": run.info.run_name}
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=plumbing.REQUIREMENTS,
            registered_model_name=MODEL_NAME,
            tags=tags,
        )
    version = str(model_info.registered_model_version)
    print(f"  {run.info.run_name:<14} accuracy {metrics['accuracy']:.3f}  -> version {version}")
    return {"run_id": run.info.run_id, "version": version, "tags": tags, "metrics": metrics}


# %%
# 3. The champion alias
# ---------------------
# An alias names one version (aliases replace the deprecated stages): ``@champion`` loads the
# best. The higher accuracy tag wins; a tie keeps the older version, as in compare_runs.py.


def crown_champion(client, best):
    """Point the alias at ``best`` if it beats the current champion; return (old, new)."""
    aliases = client.get_registered_model(MODEL_NAME).aliases
    old = str(aliases[CHAMPION_ALIAS]) if CHAMPION_ALIAS in aliases else None
    old_tags = client.get_model_version(MODEL_NAME, old).tags if old else {}
    if float(old_tags.get("accuracy", "-1")) >= float(best["tags"]["accuracy"]):
        return old, old
    client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, best["version"])
    return old, best["version"]


# %%
# 4. The sweep
# ------------
# The parent run holds what the sweep shares (grid, split) and its best score.
from datetime import datetime


def main(argv=None):
    args = parse_args(argv)
    training, held_out = load_data()
    plumbing.use_experiment(EXPERIMENT_NAME)
    grid_text = ",".join(f"{n}:{d}" for n, d in args.grid)
    with mlflow.start_run(run_name=f"sweep_{datetime.now():%Y%m%d_%H%M%S}") as parent:
        print(f"Sweep {parent.info.run_name} over the grid {grid_text}")
        mlflow.log_params({"grid": grid_text, "test_size": TEST_SIZE, "split_seed": SPLIT_SEED})
        results = [train_and_log(n, d, args.seed, training, held_out) for n, d in args.grid]
        best = max(results, key=lambda result: result["metrics"]["accuracy"])  # first of ties
        mlflow.log_metric("best_accuracy", best["metrics"]["accuracy"])
        mlflow.MlflowClient().update_registered_model(MODEL_NAME, description=DESCRIPTION)
        old, new = crown_champion(mlflow.MlflowClient(), best)
    print(f"\nBest of this sweep: {best['tags']['run_name']}, version {best['version']}")
    was = f" (was {old})." if old else "."
    stays = f"The champion stays version {new}: this sweep did not beat it."
    print(stays if old == new else f"The champion is now version {new}{was}")
    uri = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"
    print(f"Champion URI: {uri}\nLoad it:      python load_model.py --model-uri {uri}")
    print(f"Compare:      python compare_runs.py --experiment {EXPERIMENT_NAME}")
    print("\n".join(plumbing.where_to_look(parent)))
    return {"parent_run_id": parent.info.run_id, "runs": results, "champion": (old, new)}


if __name__ == "__main__":
    main()
