"""Stage 2 of the wine pipeline: fit an ElasticNet and, new, log it to MLflow.

DVC runs this stage when the prepared training rows, this script or its
params (``train`` and ``enable_mlflow`` in params.yaml) change:

    dvc repro
    dvc exp run -S train.alpha=0.1

It still writes the model (``model/model.skops``) and its card
(``model/model_card.json``). With ``enable_mlflow: true`` it also logs a run in
the MLflow experiment ``wine-quality-dvc``: params, DVC's names and the commit
as tags, the model as a new version of ``wine_quality_dvc``.
"""

# %%
# 1. Settings, from params.yaml
# -----------------------------
# DVC records the params a stage declares in dvc.yaml; the stage reads them
# itself. A bad value stops it with one sentence, before anything is written.
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent  # the project folder, or DVC's copy of it
TRAINING_ROWS = HERE / "prepared" / "train.csv"
MODEL_DIR = HERE / "model"
TARGET = "quality"


def refuse(name, requirement, value):
    raise SystemExit(f"params.yaml: {name} must be {requirement}, got {value!r}.")


def read_params():
    params = yaml.safe_load((HERE / "params.yaml").read_text()) or {}
    train = params.get("train") or {}
    alpha, l1_ratio = train.get("alpha"), train.get("l1_ratio")
    if type(alpha) not in (int, float) or not 0 < alpha < float("inf"):
        refuse("train.alpha", "a number above 0", alpha)
    if type(l1_ratio) not in (int, float) or not 0 <= l1_ratio <= 1:
        refuse("train.l1_ratio", "a number from 0 (ridge) to 1 (lasso)", l1_ratio)
    if type(params.get("enable_mlflow")) is not bool:
        refuse("enable_mlflow", "true or false", params.get("enable_mlflow"))
    return params


# %%
# 2. The model
# ------------
# The penalty treats every coefficient alike, so the features are put on one
# scale first; the scaler is part of the saved model. skops saves it without
# pickle: loading a skops file cannot run code hidden in it.
import json

import pandas as pd
import skops.io
from sklearn.linear_model import ElasticNet
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def read_training_rows():
    if not TRAINING_ROWS.is_file():
        raise SystemExit(f"There is no file {TRAINING_ROWS}: `dvc repro` runs prepare first.")
    rows = pd.read_csv(TRAINING_ROWS)
    return rows.drop(columns=TARGET), rows[TARGET]


# %%
# 3. MLflow: where the runs go, and what DVC tells a stage (new)
# --------------------------------------------------------------
# ``dvc exp run --temp`` and ``dvc queue`` run this script in a copy under
# .dvc/tmp/exps/ that DVC deletes afterwards, with any store found from here.
# DVC_ROOT always names the real project folder; one folder up, plumbing/
# knows the workshop's store (MLFLOW_TRACKING_URI, else mlflow.db there).
import os
import subprocess
import sys

WORKSHOP = Path(os.environ.get("DVC_ROOT", HERE)).resolve().parent
sys.path.insert(0, str(WORKSHOP))
import mlflow
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.models import infer_signature

import plumbing

EXPERIMENT_NAME, REGISTERED_MODEL = "wine-quality-dvc", "wine_quality_dvc"
WINE_DATA = LocalArtifactDatasetSource((WORKSHOP / "data" / "winequality-red.csv").as_posix())
DVC_TAGS = {"dvc_stage": "DVC_STAGE", "dvc_exp_name": "DVC_EXP_NAME"}  # tag: variable


def git_commit():
    """Under ``dvc exp run`` the baseline (the experiment's commit comes after), else HEAD."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True)
    return os.environ.get("DVC_EXP_BASELINE_REV") or head.stdout.strip() or "none"


# %%
# 4. MLflow: one run per training (new)
# -------------------------------------
# The params this stage read (and the split's, which made its rows), DVC's
# names as tags, the rows as a dataset, and the model with a signature, an
# input example and pinned requirements, registered: a version per training.
def log_run(params, model, X, y):
    train, prepare = params["train"], params["prepare"]
    plumbing.use_experiment(EXPERIMENT_NAME)
    default_name = f"repro_a{train['alpha']:g}_l{train['l1_ratio']:g}"
    with mlflow.start_run(run_name=os.environ.get("DVC_EXP_NAME") or default_name) as run:
        mlflow.log_params(train | {"test_size": prepare["test_size"], "seed": prepare["seed"]})
        mlflow.set_tags(
            {"model_type": "ElasticNet", "dataset": "UCI wine quality (red)"}
            | {"git_commit": git_commit()}
            | {tag: os.environ[name] for tag, name in DVC_TAGS.items() if os.environ.get(name)}
        )
        rows, name = X.assign(**{TARGET: y}), "winequality-red_training"
        dataset = mlflow.data.from_pandas(rows, name=name, targets=TARGET, source=WINE_DATA)
        mlflow.log_input(dataset, context="training")
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X, model.predict(X)),
            input_example=X.head(5),
            serialization_format="skops",
            pip_requirements=plumbing.REQUIREMENTS,
            registered_model_name=REGISTERED_MODEL,
        )
    return run.info.run_id, f"models:/{REGISTERED_MODEL}/{model_info.registered_model_version}"


def main():
    params = read_params()
    X, y = read_training_rows()
    alpha, l1_ratio = params["train"]["alpha"], params["train"]["l1_ratio"]
    model = make_pipeline(StandardScaler(), ElasticNet(alpha=alpha, l1_ratio=l1_ratio)).fit(X, y)
    MODEL_DIR.mkdir(exist_ok=True)
    skops.io.dump(model, MODEL_DIR / "model.skops")
    print(f"train: ElasticNet(alpha={alpha:g}, l1_ratio={l1_ratio:g}) saved in model/")
    card = {"model_type": "ElasticNet", "alpha": alpha, "l1_ratio": l1_ratio}
    card |= {"features": list(X.columns), "training_rows": len(X)}
    if params["enable_mlflow"]:
        run_id, model_uri = log_run(params, model, X, y)
        card |= {"mlflow_run_id": run_id, "mlflow_model_uri": model_uri}
        print(f"train: MLflow run {run_id}, model {model_uri}")
    (MODEL_DIR / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":
    main()
