"""Lesson 6: Spark MLlib runs tracked by MLflow, the best one registered.

A ``pyspark.ml`` Pipeline (a VectorAssembler, then a RandomForestClassifier) learns demo.py's
task, benign or malignant, on a local Spark once per grid configuration: one MLflow run each,
under one parent run. Needs Java 17 or newer and ``pip install -r requirements-spark.txt``:

    python train_spark_forest.py
    python train_spark_forest.py --grid "10:3,40:6" --master "local[2]"
"""

# %%
# Settings
# --------
# Spark's ``numTrees`` and ``maxDepth`` are logged by the workshop's names: forests compare.
import plumbing

GRID = [(10, 3), (40, 6)]
TEST_SIZE = 0.25
SEED = 42
MASTER = "local[*]"
EXPERIMENT_NAME = "spark-breast-cancer"
MODEL_NAME = "spark_breast_cancer_classifier"
MODEL_TYPE = "pyspark.ml RandomForestClassifier"
SOURCE = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add(
        "--grid", type=plumbing.spark_grid, default=GRID, help="comma-separated NUM_TREES:MAX_DEPTH"
    )
    add("--seed", type=plumbing.seed, default=SEED, help="seed for the split and the forests")
    add("--master", type=plumbing.spark_master, default=MASTER, help="where Spark runs")
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# Split in pandas (stratified, seeded), then handed to Spark. Spark draws random samples per
# partition, so the training rows stay in one: every machine grows the same forests.
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def load_data(seed):
    data = load_breast_cancer(as_frame=True)
    table = data.data.assign(benign=data.target.astype(float))  # 1.0 benign, 0.0 malignant
    return train_test_split(table, test_size=TEST_SIZE, random_state=seed, stratify=table.benign)


# %%
# 2. One child run per configuration
# ----------------------------------
# ``areaUnderROC`` is the workshop's ``roc_auc``. The Spark flavour still takes ``artifact_path``;
# named requirements save a minute (MLflow would start a second JVM to find them).
import mlflow
from mlflow.models import infer_signature

try:  # without pyspark, plumbing.spark_session says what to install
    import pyspark
    from pyspark.ml import Pipeline, classification, evaluation, feature
except ImportError:
    pass


def train_and_log(n_trees, max_depth, seed, training, held_out, train_df, test_df):
    features = list(held_out.columns.drop("benign"))
    with mlflow.start_run(run_name=f"spark_rf_n{n_trees}_d{max_depth}", nested=True) as run:
        params = {"n_estimators": n_trees, "max_depth": max_depth, "seed": seed}
        mlflow.log_params(params | {"model_type": MODEL_TYPE})  # a param, as in the tutorial
        mlflow.set_tags({"model_type": MODEL_TYPE, "dataset": "sklearn breast_cancer"})
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            data = mlflow.data.from_pandas(rows, SOURCE, targets="benign", name=f"bc_{context}")
            mlflow.log_input(data, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")  # for score_on_spark.py
        assembler = feature.VectorAssembler(inputCols=features, outputCol="features")
        forest = classification.RandomForestClassifier(
            labelCol="benign", numTrees=n_trees, maxDepth=max_depth, seed=seed
        )
        model = Pipeline(stages=[assembler, forest]).fit(train_df)
        scored = model.transform(test_df).cache()
        auc = evaluation.BinaryClassificationEvaluator(labelCol="benign", metricName="areaUnderROC")
        accuracy = evaluation.MulticlassClassificationEvaluator(
            labelCol="benign", metricName="accuracy"
        )
        metrics = {"roc_auc": auc.evaluate(scored), "accuracy": accuracy.evaluate(scored)}
        mlflow.log_metrics(metrics)
        model_info = mlflow.spark.log_model(
            model,
            artifact_path="model",
            signature=infer_signature(held_out[features], scored.select("prediction").toPandas()),
            input_example=held_out[features].head(3),
            pip_requirements=[f"mlflow=={mlflow.__version__}", f"pyspark=={pyspark.__version__}"],
        )
    name = run.info.run_name
    print(f"  {name:<16} roc_auc {metrics['roc_auc']:.3f}  accuracy {metrics['accuracy']:.3f}")
    return {"run_name": name, "model_uri": model_info.model_uri, **params, **metrics}


# %%
# 3. The sweep: the best registered, the champion alias moved
# -----------------------------------------------------------
# Flags, data and store before Spark: a bad flag costs no JVM start. Only the best forest
# (highest ``roc_auc``; on a tie fewer, then shallower trees) becomes a version, and takes the
# alias if it beats the champion's ``roc_auc`` tag.
from datetime import datetime


def register_and_crown(client, best):
    roc_auc = f"{best['roc_auc']:.4f}"  # a tag given at registration: no version lacks it
    version = mlflow.register_model(best["model_uri"], MODEL_NAME, tags={"roc_auc": roc_auc})
    version = str(version.version)
    aliases = client.get_registered_model(MODEL_NAME).aliases
    old = str(aliases["champion"]) if "champion" in aliases else None
    old_tags = client.get_model_version(MODEL_NAME, old).tags if old else {}
    if float(roc_auc) <= float(old_tags.get("roc_auc", "-1")):
        return version, old, old
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return version, old, version


def main(argv=None):
    args = parse_args(argv)
    training, held_out = load_data(args.seed)
    plumbing.use_experiment(EXPERIMENT_NAME)
    grid_text = ",".join(f"{n}:{d}" for n, d in args.grid)
    with plumbing.spark_session(args.master, "train_spark_forest") as spark:
        train_df = spark.createDataFrame(training).coalesce(1).cache()  # see 1. Data
        frames = (training, held_out, train_df, spark.createDataFrame(held_out).cache())
        with mlflow.start_run(run_name=f"spark_sweep_{datetime.now():%Y%m%d_%H%M%S}") as parent:
            print(f"Sweep {parent.info.run_name} over the grid {grid_text}")
            mlflow.log_params({"grid": grid_text, "test_size": TEST_SIZE, "seed": args.seed})
            mlflow.set_tags({"model_type": MODEL_TYPE, "spark_master": args.master})
            runs = [train_and_log(n, d, args.seed, *frames) for n, d in args.grid]
            best = min(runs, key=lambda r: (-r["roc_auc"], r["n_estimators"], r["max_depth"]))
            mlflow.log_metric("best_roc_auc", best["roc_auc"])
            version, old, new = register_and_crown(mlflow.MlflowClient(), best)
    print(f"Best by roc_auc: {best['run_name']}, now version {version} of {MODEL_NAME}")
    was = f" (was {old})" if old else ""
    print(f"The champion stays version {old}." if old == new else f"Champion: version {new}{was}.")
    print(f"Champion URI:  models:/{MODEL_NAME}@champion\nScore with it: python score_on_spark.py")
    print(f"Compare:       python compare_runs.py --experiment {EXPERIMENT_NAME}")
    print("\n".join(plumbing.where_to_look(parent)))
    champion = {"version": version, "old": old, "new": new}
    return {"parent_run_id": parent.info.run_id, "runs": runs, "best": best} | champion


if __name__ == "__main__":
    main()
