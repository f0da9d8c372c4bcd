"""spark/train_spark_forest.py's work the way the Spark tutorials write it (the Databricks "Day 7:
MLflow Tracking" lesson's calls): one call per value, a default SparkSession, and the default
``mlflow.spark.log_model``, which infers the model's requirements (in a second JVM)."""

import argparse

import mlflow
from mlflow import MlflowClient
from mlflow.models import infer_signature
from pyspark.ml import Pipeline
from pyspark.ml.classification import RandomForestClassifier
from pyspark.ml.evaluation import BinaryClassificationEvaluator, MulticlassClassificationEvaluator
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--grid", default="10:3,40:6")
parser.add_argument("--master", default="local[*]")
args = parser.parse_args()

spark = SparkSession.builder.master(args.master).appName("baseline").getOrCreate()
data = load_breast_cancer(as_frame=True)
table = data.data.assign(benign=data.target.astype(float))
train, test = train_test_split(table, test_size=0.25, random_state=42, stratify=table.benign)
train_df, test_df = spark.createDataFrame(train), spark.createDataFrame(test)
features = list(data.feature_names)

mlflow.set_experiment("spark-breast-cancer")
client = MlflowClient()
results = []
with mlflow.start_run(run_name="spark_sweep"):
    mlflow.log_param("grid", args.grid)
    mlflow.log_param("test_size", 0.25)
    mlflow.log_param("seed", 42)
    for pair in args.grid.split(","):
        num_trees, max_depth = (int(number) for number in pair.split(":"))
        with mlflow.start_run(run_name=f"spark_rf_n{num_trees}_d{max_depth}", nested=True):
            mlflow.log_param("model_type", "RandomForest")
            mlflow.log_param("n_estimators", num_trees)
            mlflow.log_param("max_depth", max_depth)
            mlflow.log_param("seed", 42)
            mlflow.set_tag("model_type", "RandomForest")
            mlflow.set_tag("dataset", "sklearn breast_cancer")
            mlflow.log_input(mlflow.data.from_pandas(train, targets="benign"), context="training")
            mlflow.log_input(mlflow.data.from_pandas(test, targets="benign"), context="evaluation")
            mlflow.log_table(test, artifact_file="held_out_rows.json")

            assembler = VectorAssembler(inputCols=features, outputCol="features")
            rf = RandomForestClassifier(
                labelCol="benign", numTrees=num_trees, maxDepth=max_depth, seed=42
            )
            model = Pipeline(stages=[assembler, rf]).fit(train_df)
            predictions = model.transform(test_df)
            auc = BinaryClassificationEvaluator(labelCol="benign").evaluate(predictions)
            mlflow.log_metric("roc_auc", auc)
            accuracy = MulticlassClassificationEvaluator(labelCol="benign", metricName="accuracy")
            mlflow.log_metric("accuracy", accuracy.evaluate(predictions))
            info = mlflow.spark.log_model(
                model,
                artifact_path="model",
                signature=infer_signature(
                    test[features], predictions.select("prediction").toPandas()
                ),
                input_example=test[features].head(3),
            )
            results.append((auc, info.model_uri))
    best_auc, best_uri = max(results)
    mlflow.log_metric("best_roc_auc", best_auc)
    version = mlflow.register_model(best_uri, "spark_breast_cancer_classifier").version
    client.set_model_version_tag("spark_breast_cancer_classifier", version, "roc_auc", best_auc)
    client.set_registered_model_alias("spark_breast_cancer_classifier", "champion", version)
spark.stop()
