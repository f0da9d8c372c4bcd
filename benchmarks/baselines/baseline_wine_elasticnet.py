"""train_wine_elasticnet.py's work the way MLflow's sklearn_elasticnet_wine example and the
tutorials copied from it write it: one call per value, the default ``log_model``."""

import argparse

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.5)
parser.add_argument("--l1-ratio", type=float, default=0.5)
parser.add_argument("--data", required=True)
args = parser.parse_args()

data = pd.read_csv(args.data)
train, test = train_test_split(data, test_size=0.25, random_state=42)
X_train, y_train = train.drop(columns="quality"), train.quality
X_test, y_test = test.drop(columns="quality"), test.quality

mlflow.set_experiment("wine-quality-elasticnet")
with mlflow.start_run(run_name=f"elasticnet_a{args.alpha:g}_l{args.l1_ratio:g}"):
    mlflow.log_param("alpha", args.alpha)
    mlflow.log_param("l1_ratio", args.l1_ratio)
    mlflow.log_param("test_size", 0.25)
    mlflow.log_param("seed", 42)
    mlflow.set_tag("model_type", "ElasticNet")
    mlflow.set_tag("dataset", "UCI wine quality (red)")
    mlflow.log_input(mlflow.data.from_pandas(train, targets="quality"), context="training")
    mlflow.log_input(mlflow.data.from_pandas(test, targets="quality"), context="evaluation")
    mlflow.log_table(test, artifact_file="held_out_rows.json")

    model = make_pipeline(StandardScaler(), ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio))
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    mlflow.log_metric("rmse", np.sqrt(mean_squared_error(y_test, predicted)))
    mlflow.log_metric("r2", r2_score(y_test, predicted))
    mlflow.log_metric("mae", mean_absolute_error(y_test, predicted))
    mlflow.sklearn.log_model(model, name="model", input_example=X_train.head(5))
