"""Baseline for train_wine_elasticnet.py, written the way common MLflow tutorials write it.

The shape of MLflow's own ``sklearn_elasticnet_wine`` example and the many
tutorials copied from it: read the CSV with pandas, one ``log_param`` and one
``log_metric`` call per value, the default ``log_model`` with an input example
(signature and requirements inferred by MLflow). Same data, same model (scaler
plus ElasticNet), same params, metrics, tags and input as the workshop script.
Used by benchmarks/run.py; not a lesson.

    python benchmarks/baselines/baseline_wine_elasticnet.py --data winequality-red.csv
"""

import argparse

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--l1-ratio", type=float, default=0.5)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", required=True)
    args = parser.parse_args(argv)

    with open(args.data) as file:
        separator = ";" if ";" in file.readline() else ","
    data = pd.read_csv(args.data, sep=separator).astype(float)
    train, test = train_test_split(data, test_size=args.test_size, random_state=args.seed)
    train_x, test_x = train.drop(["quality"], axis=1), test.drop(["quality"], axis=1)
    train_y, test_y = train["quality"], test["quality"]

    mlflow.set_experiment("wine-quality-elasticnet")
    with mlflow.start_run(run_name=f"elasticnet_a{args.alpha:g}_l{args.l1_ratio:g}") as run:
        mlflow.log_param("alpha", args.alpha)
        mlflow.log_param("l1_ratio", args.l1_ratio)
        mlflow.log_param("test_size", args.test_size)
        mlflow.log_param("seed", args.seed)
        mlflow.set_tag("model_type", "ElasticNet")
        mlflow.set_tag("dataset", "UCI wine quality (red)")
        mlflow.log_input(
            mlflow.data.from_pandas(
                data, name="winequality-red", targets="quality", source=args.data
            )
        )

        model = make_pipeline(
            StandardScaler(), ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio)
        )
        model.fit(train_x, train_y)

        predicted = model.predict(test_x)
        rmse = np.sqrt(mean_squared_error(test_y, predicted))
        mlflow.log_metric("rmse", rmse)
        mlflow.log_metric("r2", r2_score(test_y, predicted))
        mlflow.log_metric("mae", mean_absolute_error(test_y, predicted))

        model_info = mlflow.sklearn.log_model(model, name="model", input_example=train_x.head(5))
    print(f"Run {run.info.run_id}: rmse {rmse:.3f}, model {model_info.model_uri}")
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri}


if __name__ == "__main__":
    main()
