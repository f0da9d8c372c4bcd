"""Lesson 6, part 2: registered models on Spark, loaded back and as a Spark UDF.

First the Spark forest that train_spark_forest.py registered: loaded back with
``mlflow.spark.load_model`` (a ``pyspark.ml`` PipelineModel) and with pyfunc,
it predicts the rows its run held out, beside the truth. Then the workshop's
scikit-learn champion from train_iris_sweep.py scores a Spark DataFrame
through ``mlflow.pyfunc.spark_udf``: Spark's Python workers run the model on
every partition, which is how one model scores more data than one machine
holds. Its predictions equal the model's own ``predict``. From the workshop's
folder:

    python spark/train_spark_forest.py
    python train_iris_sweep.py
    python spark/score_on_spark.py
"""

# %%
# Settings
# --------
# Both models by alias: whichever version is champion now.
import argparse
import re

SPARK_MODEL_URI = "models:/spark_breast_cancer_classifier@champion"
SKLEARN_MODEL_URI = "models:/iris_classifier@champion"
ROWS = 5
MASTER = "local[*]"
MASTERS = r"local(\[(\*|[1-9][0-9]*)\])?|yarn|(spark|k8s)://\S+"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--spark-model-uri", default=SPARK_MODEL_URI, help="a Spark model")
    parser.add_argument("--sklearn-model-uri", default=SKLEARN_MODEL_URI, help="a sklearn model")
    parser.add_argument("--rows", type=int, default=ROWS, help="held-out rows to show")
    parser.add_argument("--master", default=MASTER, help="local[*], local[N], spark://HOST:PORT")
    args = parser.parse_args(argv)
    # Checked before Spark starts (the slow part): one line.
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if not re.fullmatch(MASTERS, args.master):
        parser.error("--master must be local[*], local[N], spark://HOST:PORT, yarn or k8s://...")
    return args


# %%
# Where the runs are
# ------------------
# The store every lesson writes to: ``MLFLOW_TRACKING_URI`` or, without it,
# ``mlflow.db`` at the workshop's root, the folder above this one. This lesson
# only reads, so without a store it says which lesson to run first.
import os
from pathlib import Path

import mlflow
from filelock import FileLock

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
WORKSHOP = HERE.parent  # this lesson lives in spark/, one folder below the workshop's root
LOCAL_STORE = "sqlite:///" + (WORKSHOP / "mlflow.db").as_posix()
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", LOCAL_STORE)


def use_store():
    if TRACKING_URI == LOCAL_STORE and not (WORKSHOP / "mlflow.db").is_file():
        raise SystemExit("There are no runs yet: run `python spark/train_spark_forest.py` first.")
    mlflow.set_tracking_uri(TRACKING_URI)
    if TRACKING_URI != LOCAL_STORE:
        return mlflow.MlflowClient()
    # A lesson started a moment ago may still be making this new store's tables,
    # holding mlflow.db.lock (its "Where the runs go" cell). MlflowClient() opens
    # the store and would make them too, at the same time, which breaks the
    # store for good: after the lock, it finds them made.
    with FileLock(WORKSHOP / "mlflow.db.lock"):
        return mlflow.MlflowClient()


# %%
# Which models, which rows
# ------------------------
# ``get_model_info`` reads a model's MLmodel file without loading it: its run
# and flavors. Each training run logged the rows it held out, with the truth,
# as ``held_out_rows.json``, which the client's ``load_table`` reads back (it
# searches only runs that are not deleted). Both models are checked before
# Spark starts.
from mlflow.exceptions import MlflowException


def model_and_rows(client, uri, flavor, script):
    try:
        info = mlflow.models.get_model_info(uri)
        run = client.get_run(info.run_id)
    except MlflowException as error:
        raise SystemExit(f"Cannot find {uri} ({error.message}): run `{script}` first.") from None
    if flavor not in info.flavors:
        raise SystemExit(f"{uri} is not a {flavor} model; it has {', '.join(info.flavors)}.")
    if run.info.lifecycle_stage == "deleted":
        raise SystemExit(
            f"The run {run.info.run_id} that logged {uri} was deleted: "
            f"`mlflow runs restore --run-id {run.info.run_id}` brings it back."
        )
    held_out = client.load_table(run.info.experiment_id, "held_out_rows.json", [run.info.run_id])
    features = info.signature.inputs.input_names()
    [truth] = [name for name in held_out.columns if name not in features]
    return held_out[features], held_out[truth]


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
import sys

try:  # without pyspark, spark_session says what to install
    import pyspark
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import col, struct
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
    # Spark's Python workers run this Python, with its packages (by default: python3).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # py4j, which carries every pyspark call to Java, logs tracebacks of its own
    # when Ctrl+C interrupts a call (to Python's root logger, and to its own):
    # the lesson's one line says enough.
    logging.getLogger().addFilter(lambda record: "py4j" not in record.pathname)
    logging.getLogger("py4j").propagate = False
    print(f"Starting Spark ({master}) ...", flush=True)
    spark = start_spark(spark_builder(master, "score_on_spark"))
    try:
        yield spark
    finally:
        spark.stop()


# %%
# The Spark model, loaded back
# ----------------------------
# ``mlflow.spark.load_model`` returns the PipelineModel itself: ``transform`` a
# Spark DataFrame, get ``prediction`` and ``probability`` columns. The pyfunc
# interface (what serving and ``spark_udf`` use) takes pandas and returns a
# list; it uses the open session (on its own it would start one).


def predict_with_spark_model(spark, uri, features, truth, rows):
    model = mlflow.spark.load_model(uri)
    scored = model.transform(spark.createDataFrame(features.assign(**{truth.name: truth})))
    probability = vector_to_array("probability")[1].alias(f"P({truth.name})")
    table = scored.select(col(truth.name).cast("int"), col("prediction").cast("int"), probability)
    table = table.toPandas()
    print(f"{uri}: a {type(model).__name__}, on the {len(table)} rows its run held out")
    print(table.head(rows).to_string(index=False, float_format="{:.3f}".format))
    accuracy = (table[truth.name] == table["prediction"]).mean()
    print(f"  accuracy on all {len(table)} rows: {accuracy:.3f}")
    pyfunc_predictions = mlflow.pyfunc.load_model(uri).predict(features)
    same = list(pyfunc_predictions) == list(table["prediction"])
    print(f"  loaded with pyfunc: {'the same' if same else 'OTHER'} predictions")
    return {"accuracy": accuracy, "table": table, "pyfunc": list(pyfunc_predictions)}


# %%
# A scikit-learn model as a Spark UDF
# -----------------------------------
# ``spark_udf`` wraps any pyfunc model as a Spark function: each partition of
# the DataFrame goes to a Python worker as a pandas batch. ``env_manager=
# "local"``: the workers use this environment, not one built from the model's
# requirements (which needs a download). ``struct`` passes the columns by name.


def score_with_spark_udf(spark, uri, features, truth, rows):
    predict = mlflow.pyfunc.spark_udf(spark, uri, result_type="string", env_manager="local")
    frame = spark.createDataFrame(features.assign(**{truth.name: truth}))
    scored = frame.withColumn("prediction", predict(struct(*features.columns))).toPandas()
    partitions = frame.rdd.getNumPartitions()
    print(f"\n{uri} as a spark_udf, {len(scored)} rows in {partitions} partitions")
    print(scored[[truth.name, "prediction"]].head(rows).to_string(index=False))
    own = [str(prediction) for prediction in mlflow.pyfunc.load_model(uri).predict(features)]
    same = list(scored["prediction"]) == own
    print(f"  equal to the model's own predict: {'yes' if same else 'NO'}, all {len(own)} rows")
    return {"spark_udf": list(scored["prediction"]), "predict": own}


# %%
# Both, in one Spark session
# --------------------------


def main(argv=None):
    args = parse_args(argv)
    client = use_store()
    forest_rows = model_and_rows(
        client, args.spark_model_uri, "spark", "python spark/train_spark_forest.py"
    )
    sklearn_rows = model_and_rows(
        client, args.sklearn_model_uri, "sklearn", "python train_iris_sweep.py"
    )
    with spark_session(args.master) as spark:
        forest = predict_with_spark_model(spark, args.spark_model_uri, *forest_rows, args.rows)
        udf = score_with_spark_udf(spark, args.sklearn_model_uri, *sklearn_rows, args.rows)
    print("\nThe same scikit-learn model over HTTP instead:")
    print(f"  mlflow models serve -m {args.sklearn_model_uri} --port 5001 --env-manager local")
    return {"spark_model": forest, "spark_udf": udf}


# %%
# Run the lesson
# --------------
# Ctrl+C raises KeyboardInterrupt, and SIGTERM (``kill``) is made to raise it
# too: leaving ``with mlflow.start_run()`` that way marks the run FAILED. Then
# one line, and the exit code a shell expects (130 or 143). In a notebook,
# whose command line is the kernel's own, the lesson runs with its defaults.


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
