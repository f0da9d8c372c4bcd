"""Lesson 6: Spark MLlib runs tracked by MLflow, compared, and the best one registered.

A ``pyspark.ml`` Pipeline (a VectorAssembler, then a RandomForestClassifier)
learns demo.py's task, benign or malignant, on a Spark that runs on this
machine: one MLflow run per configuration of a grid, under one parent run. The
forest with the highest ``roc_auc`` becomes a version of a registered model,
and its champion if it beats the one before. Needs Java 17 or newer and
``pip install -r spark/requirements.txt``. From the workshop's folder:

    python spark/train_spark_forest.py
    python spark/train_spark_forest.py --grid "10:3,40:6" --master "local[2]"
"""

# %%
# Settings
# --------
# One child run per NUM_TREES:MAX_DEPTH pair of the grid. ``--master`` says
# where Spark runs: ``local[*]`` is this machine, one worker thread per core.
import argparse
import re

GRID = "10:3,40:6"
TEST_SIZE = 0.25
SEED = 42
MASTER = "local[*]"
MASTERS = r"local(\[(\*|[1-9][0-9]*)\])?|yarn|(spark|k8s)://\S+"
MODEL_NAME = "spark_breast_cancer_classifier"
MODEL_TYPE = "pyspark.ml RandomForestClassifier"


def parse_grid(text):
    """``"10:3,40:6"`` -> ``[(10, 3), (40, 6)]``; a ValueError if it is not that shape."""
    pairs = []
    for pair in text.split(","):
        trees, _, depth = pair.partition(":")
        pairs.append((int(trees), int(depth)))
    return pairs


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--grid", default=GRID, help="comma-separated NUM_TREES:MAX_DEPTH pairs")
    parser.add_argument("--seed", type=int, default=SEED, help="seed for the split and forests")
    parser.add_argument("--master", default=MASTER, help="local[*], local[N], spark://HOST:PORT")
    args = parser.parse_args(argv)
    # Checked before Spark starts (the slow part) and before any run: one line, nothing logged.
    try:
        args.grid = parse_grid(args.grid)
    except ValueError:
        parser.error(f"--grid takes pairs like 10:3,40:6, got {args.grid!r}")
    if not all(1 <= trees < 2**31 and 1 <= depth <= 30 for trees, depth in args.grid):
        parser.error("--grid needs at least 1 tree, and a depth from 1 to 30 (Spark's limit)")
    if not 0 <= args.seed < 2**32:
        parser.error("--seed must be a whole number from 0 to 4294967295")
    if not re.fullmatch(MASTERS, args.master):
        parser.error("--master must be local[*], local[N], spark://HOST:PORT, yarn or k8s://...")
    return args


# %%
# Where the runs go
# -----------------
# MLflow writes to the tracking store named by ``MLFLOW_TRACKING_URI`` or,
# without it, to ``mlflow.db`` at the workshop's root, the folder above this
# one: the same store as every other lesson, whichever folder you start this
# script from, so ``mlflow ui`` started at the root shows these runs too.
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this lesson lives in spark/, one folder below the workshop's root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_STORE
EXPERIMENT_NAME = "spark-breast-cancer"


def use_experiment():
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:  # a team server, say: whoever runs it set it up
        return mlflow.set_experiment(EXPERIMENT_NAME)
    # The first script to open a new store creates its tables, and MLflow does
    # that without a lock: scripts started at once would break the store. The
    # lock makes the others wait their turn, and then find the tables made.
    with FileLock(WORKSHOP / "mlflow.db.lock"):
        # Write-ahead logging, kept in the file once set: a reader never blocks a
        # writer, so a run stopped by Ctrl+C just as MLflow read from the store
        # can still be marked FAILED (without it, "database is locked").
        with closing(sqlite3.connect(WORKSHOP / "mlflow.db")) as store:
            store.execute("PRAGMA journal_mode=WAL")
        if mlflow.get_experiment_by_name(EXPERIMENT_NAME) is None:
            # Files go to mlruns/ beside the store, whatever folder the script
            # was started in (MLflow's default is ./mlruns there).
            location = (WORKSHOP / "mlruns" / EXPERIMENT_NAME).as_uri()
            mlflow.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        return mlflow.set_experiment(EXPERIMENT_NAME)


# %%
# The data
# --------
# Split in pandas (stratified, seeded), then handed to Spark. Spark draws its
# random samples per partition, so the training rows are kept in one: every
# machine, whatever its number of cores, grows the same forests.
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

SOURCE = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"


def load_data(seed):
    data = load_breast_cancer(as_frame=True)
    table = data.data.assign(benign=data.target.astype(float))  # 1.0 benign, 0.0 malignant
    return train_test_split(table, test_size=TEST_SIZE, random_state=seed, stratify=table.benign)


# %%
# A Spark session
# ---------------
# pyspark starts Spark in a Java process of its own. On this machine it
# listens on 127.0.0.1 only and has no web UI; its log (``log4j2.properties``
# beside this file) lets errors through only: set the levels there to ``warn``
# or ``info`` to see more. Two Java options suit a run this short: the quick
# compiler only, and the simplest garbage collector (Spark starts and trains
# in about 40 % less time here; a long job on a cluster wants the defaults).
import contextlib
import logging
import shutil
import signal

try:  # without pyspark, spark_session says what to install
    import pyspark
    from pyspark.ml import Pipeline, classification, evaluation, feature
    from pyspark.sql import SparkSession
except ImportError:
    pyspark = None


def spark_builder(master, app_name):
    builder = SparkSession.builder.master(master).appName(app_name)
    builder = builder.config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    java_options = []
    if master.startswith("local"):  # on a cluster, the workers must reach the driver
        builder = builder.config("spark.driver.host", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1")
        java_options = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    log_config = HERE / "log4j2.properties"
    if log_config.is_file():
        java_options.append(f"-Dlog4j2.configurationFile={log_config.as_uri()}")
    return builder.config("spark.driver.extraJavaOptions", " ".join(java_options))


# Stopped half-way through its start, Spark's Java process would stay running
# on its own: Ctrl+C and SIGTERM wait the few seconds until it has started.
def start_spark(builder):
    held = []
    sigint = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    sigterm = signal.signal(signal.SIGTERM, lambda signum, frame: held.append(signum))
    try:
        spark = builder.getOrCreate()
    finally:
        signal.signal(signal.SIGINT, sigint)
        signal.signal(signal.SIGTERM, sigterm)
    if held:
        spark.stop()
        raise KeyboardInterrupt(held[0])
    return spark


# A session already open (a notebook's) is used and left open. One started here
# is stopped at the end, Ctrl+C included, and its Java process ends with Python.
@contextlib.contextmanager
def spark_session(master):
    if pyspark is None:
        raise SystemExit("This lesson needs pyspark: pip install -r spark/requirements.txt")
    java_home = os.environ.get("JAVA_HOME")
    if shutil.which("java", path=os.path.join(java_home, "bin") if java_home else None) is None:
        raise SystemExit("Spark needs Java 17 or newer, and there is none: see spark/README.md.")
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    # py4j, which carries every pyspark call to Java, logs tracebacks of its own
    # when Ctrl+C interrupts a call (to Python's root logger, and to its own):
    # the lesson's one line says enough.
    logging.getLogger().addFilter(lambda record: "py4j" not in record.pathname)
    logging.getLogger("py4j").propagate = False
    print(f"Starting Spark ({master}) ...", flush=True)
    spark = start_spark(spark_builder(master, "train_spark_forest"))
    try:
        yield spark
    finally:
        spark.stop()


# %%
# One child run per configuration
# -------------------------------
# ``nested=True`` makes each run a child of the sweep's run. Spark's
# ``numTrees`` and ``maxDepth`` are logged by scikit-learn's names, so that
# forests compare, and ``areaUnderROC`` as ``roc_auc``. MLflow's Spark flavour
# still takes ``artifact_path`` (every other flavour takes ``name``); naming the
# requirements saves a minute per model (MLflow would start a second Java).
from mlflow.models import infer_signature


def train_and_log(n_trees, max_depth, seed, training, held_out, train_df, test_df):
    features = list(held_out.columns.drop("benign"))
    with mlflow.start_run(run_name=f"spark_rf_n{n_trees}_d{max_depth}", nested=True) as run:
        params = {"n_estimators": n_trees, "max_depth": max_depth, "seed": seed}
        mlflow.log_params(params | {"model_type": MODEL_TYPE})
        mlflow.set_tags({"model_type": MODEL_TYPE, "dataset": "sklearn breast_cancer"})
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            dataset = mlflow.data.from_pandas(
                rows, source=SOURCE, targets="benign", name=f"bc_{context}"
            )
            mlflow.log_input(dataset, context=context)
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
# The best registered, the champion alias moved
# ---------------------------------------------
# Only the best forest (highest ``roc_auc``; on a tie fewer, then shallower
# trees) becomes a version, with its ``roc_auc`` as a version tag. It takes the
# alias ``champion`` only if it beats the champion's tag.
from datetime import datetime


def register_and_crown(client, best):
    roc_auc = f"{best['roc_auc']:.4f}"
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
    experiment = use_experiment()
    grid_text = ",".join(f"{trees}:{depth}" for trees, depth in args.grid)
    with spark_session(args.master) as spark:
        train_df = spark.createDataFrame(training).coalesce(1).cache()  # one partition: The data
        test_df = spark.createDataFrame(held_out).cache()
        with mlflow.start_run(run_name=f"spark_sweep_{datetime.now():%Y%m%d_%H%M%S}") as parent:
            print(f"Sweep {parent.info.run_name} over the grid {grid_text}")
            mlflow.log_params({"grid": grid_text, "test_size": TEST_SIZE, "seed": args.seed})
            mlflow.set_tags({"model_type": MODEL_TYPE, "spark_master": args.master})
            runs = [
                train_and_log(trees, depth, args.seed, training, held_out, train_df, test_df)
                for trees, depth in args.grid
            ]
            best = min(runs, key=lambda r: (-r["roc_auc"], r["n_estimators"], r["max_depth"]))
            mlflow.log_metric("best_roc_auc", best["roc_auc"])
            version, old, new = register_and_crown(mlflow.MlflowClient(), best)

    print(f"Best by roc_auc: {best['run_name']}, now version {version} of {MODEL_NAME}")
    if old == new:
        print(f"The champion stays version {old}.")
    else:
        print(f"Champion: version {new}" + (f" (was {old})." if old else "."))
    print(f"Champion URI: models:/{MODEL_NAME}@champion")
    print("Score it:     python spark/score_on_spark.py")
    print(f"Compare:      python compare_runs.py --experiment {EXPERIMENT_NAME}")
    ui = TRACKING_URI if TRACKING_URI.startswith("http") else "http://127.0.0.1:5000"
    print(
        f"See it:       {ui}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning"
    )
    champion = {"version": version, "old": old, "new": new}
    return {"parent_run_id": parent.info.run_id, "runs": runs, "best": best} | champion


# %%
# Run the lesson
# --------------
# Ctrl+C raises KeyboardInterrupt, and SIGTERM (``kill``) is made to raise it
# too: leaving ``with mlflow.start_run()`` that way marks the run FAILED. Then
# one line, and the exit code a shell expects (130 or 143). In a notebook,
# whose command line is the kernel's own, the lesson runs with its defaults.
import sys

from mlflow.exceptions import MlflowException


def interrupt(signum, frame):
    raise KeyboardInterrupt(signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt)
    try:
        main([] if "ipykernel" in sys.modules else None)
    except KeyboardInterrupt as stop:
        signum = stop.args[0] if stop.args else signal.SIGINT
        name = "Ctrl+C" if signum == signal.SIGINT else "SIGTERM"
        print(f"Stopped by {name}: a run under way is marked FAILED.", file=sys.stderr)
        sys.exit(128 + signum)
    except MlflowException as error:
        sys.exit(f"MLflow: {error.message}")
