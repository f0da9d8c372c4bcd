"""Lesson: registered models predicting on Spark, loaded back and as a Spark UDF.

First the Spark forest that train_spark_forest.py registered: loaded back with
``mlflow.spark.load_model`` (a ``pyspark.ml`` PipelineModel) and with pyfunc,
it predicts the rows its run held out, beside the truth. Then the workshop's
scikit-learn champion from train_iris_sweep.py scores a Spark DataFrame
through ``mlflow.pyfunc.spark_udf``: Spark's Python workers run the model on
every partition, which is how one model scores more data than one machine
holds. Its predictions equal the model's own ``predict``.

    python train_spark_forest.py
    python train_iris_sweep.py
    python score_on_spark.py
"""

# %%
# Settings
# --------
# Both models by alias: whichever version is champion now.
import plumbing

SPARK_MODEL_URI = "models:/spark_breast_cancer_classifier@champion"
SKLEARN_MODEL_URI = "models:/iris_classifier@champion"
ROWS = 5
MASTER = "local[*]"
NO_STORE_YET = "There is no tracking store yet: run `python train_spark_forest.py` first."


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--spark-model-uri", type=plumbing.model_uri, default=SPARK_MODEL_URI, help="Spark model")
    add("--sklearn-model-uri", type=plumbing.model_uri, default=SKLEARN_MODEL_URI, help="sklearn")
    add("--rows", type=plumbing.positive_int, default=ROWS, help="held-out rows to show")
    add("--master", type=plumbing.spark_master, default=MASTER, help="where Spark runs")
    return parser.parse_args(argv)


# %%
# 1. Which models, which rows
# ---------------------------
# ``get_model_info`` reads a model's MLmodel file without loading it: its run
# and flavors. Each training run logged the rows it held out, with the truth,
# as ``held_out_rows.json``, which the client's ``load_table`` reads back.
# Both models are checked before Spark starts.
import mlflow
from mlflow.exceptions import MlflowException


def model_and_rows(uri, flavor, script):
    client = mlflow.MlflowClient()  # mlflow.load_table reads the active experiment only
    try:
        info = mlflow.models.get_model_info(uri)
        experiment_id = client.get_run(info.run_id).info.experiment_id  # gone after `mlflow gc`
    except MlflowException as error:
        message = f"Cannot find {uri} ({error.message}): run `python {script}` first."
        raise SystemExit(message) from None
    if flavor not in info.flavors:
        raise SystemExit(f"{uri} is not a {flavor} model; it has {', '.join(info.flavors)}.")
    held_out = client.load_table(experiment_id, "held_out_rows.json", [info.run_id])
    features = info.signature.inputs.input_names()
    [truth] = [name for name in held_out.columns if name not in features]
    return held_out[features], held_out[truth]


# %%
# 2. The Spark model, loaded back
# -------------------------------
# ``mlflow.spark.load_model`` returns the PipelineModel itself: ``transform`` a
# Spark DataFrame, get ``prediction`` and ``probability`` columns. The pyfunc
# interface (what serving and ``spark_udf`` use) takes pandas and returns a
# list; it uses the open session (on its own it starts one, about 40 s).
try:  # without pyspark, plumbing.spark_session says what to install
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql.functions import col, struct
except ImportError:
    pass


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
# 3. A scikit-learn model as a Spark UDF
# --------------------------------------
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
# 4. Both, in one Spark session
# -----------------------------


def main(argv=None):
    args = parse_args(argv)
    plumbing.connect(NO_STORE_YET)
    forest_rows = model_and_rows(args.spark_model_uri, "spark", "train_spark_forest.py")
    sklearn_rows = model_and_rows(args.sklearn_model_uri, "sklearn", "train_iris_sweep.py")
    with plumbing.spark_session(args.master, "score_on_spark") as spark:
        forest = predict_with_spark_model(spark, args.spark_model_uri, *forest_rows, args.rows)
        udf = score_with_spark_udf(spark, args.sklearn_model_uri, *sklearn_rows, args.rows)
    print("\nThe same scikit-learn model behind HTTP instead: python serve_model.py")
    return {"spark_model": forest, "spark_udf": udf}


if __name__ == "__main__":
    main()
