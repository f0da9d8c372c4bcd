"""Lesson 1: one MLflow run with params, metrics, tags, artifacts and a model.

A random forest learns to tell malignant from benign tumours (scikit-learn's
breast-cancer data: 569 patients, 30 measurements each). One MLflow run holds
it all: settings (params), scores (metrics), labels (tags), plots and a report
(artifacts), the data (inputs), the held-out rows and the model itself.

    python demo.py
    python demo.py --n-estimators 300 --max-depth 5
"""

# %%
# Settings
# --------
# Edit the defaults here or pass flags; each run records the values it used.
import getpass

import plumbing

N_ESTIMATORS = 100
MAX_DEPTH = 8
TEST_SIZE = 0.25
SEED = 42
EXPERIMENT_NAME = "demo-mlflow-artifacts"
RUN_NAME = "random_forest_breast_cancer"
SOURCE = "https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic"


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    add = parser.add_argument
    add("--n-estimators", type=plumbing.positive_int, default=N_ESTIMATORS, help="trees")
    add("--max-depth", type=plumbing.positive_int, default=MAX_DEPTH, help="deepest a tree grows")
    add("--test-size", type=plumbing.holdout_fraction, default=TEST_SIZE, help="share held out")
    add("--seed", type=plumbing.seed, default=SEED, help="seed for the split and the forest")
    add("--owner", default=getpass.getuser(), help="recorded as the 'owner' tag")
    return parser.parse_args(argv)


# %%
# 1. Data
# -------
# Held-out rows give honest scores: the model never trains on them. ``stratify``
# keeps the share of malignant cases equal; the label (and prediction) is a word.
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split


def load_data(test_size, seed):
    data = load_breast_cancer(as_frame=True)
    rows = data.data.assign(diagnosis=data.target_names[data.target])
    return train_test_split(rows, test_size=test_size, random_state=seed, stratify=rows.diagnosis)


# %%
# 2. Scores and plots
# -------------------
# Scores on rows the model never saw, with "benign" as the positive class. A
# score is one number; a plot shows *where* a model goes wrong.
import matplotlib

matplotlib.use("Agg")  # draw to files, no window needed
import matplotlib.pyplot as plt
from sklearn import metrics as sk
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay


def evaluate(model, X_test, y_test):
    y_pred = model.predict(X_test)
    benign = model.predict_proba(X_test)[:, list(model.classes_).index("benign")]
    scores = {
        "accuracy": sk.accuracy_score(y_test, y_pred),
        "roc_auc": sk.roc_auc_score(y_test == "benign", benign),
        "precision": sk.precision_score(y_test, y_pred, pos_label="benign"),
        "recall": sk.recall_score(y_test, y_pred, pos_label="benign"),
        "f1_score": sk.f1_score(y_test, y_pred, pos_label="benign"),
    }
    confusion, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(y_test, y_pred, cmap="Blues", colorbar=False, ax=ax)
    ax.set_title("Confusion matrix (test set)")
    roc, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    curve = {"label": f"forest (roc_auc {scores['roc_auc']:.3f}, as logged)"}
    RocCurveDisplay.from_predictions(y_test, benign, pos_label="benign", curve_kwargs=curve, ax=ax)
    ax.set(title="ROC curve on the test set", xlabel="Malignant tumours called benign (share)")
    ax.set_ylabel("Benign tumours called benign (share)")
    importance, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    top = model.feature_importances_.argsort()[-15:]
    ax.barh(X_test.columns[top], model.feature_importances_[top])
    xlabel = "Importance (how much its splits separate the classes, share of the total)"
    ax.set(xlabel=xlabel, title="Top 15 measurements")
    plots = {"confusion_matrix": confusion, "roc_curve": roc, "feature_importance": importance}
    return y_pred, scores, plots, sk.classification_report(y_test, y_pred, digits=3)


# %%
# 3. The MLflow run
# -----------------
# Everything logged inside ``with mlflow.start_run()`` belongs to one run. If
# the block fails, MLflow marks the run FAILED instead of leaving it RUNNING.
import mlflow
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier


def main(argv=None):
    args = parse_args(argv)
    training, held_out = load_data(args.test_size, args.seed)
    X_train, y_train = training.drop(columns="diagnosis"), training["diagnosis"]
    X_test, y_test = held_out.drop(columns="diagnosis"), held_out["diagnosis"]

    experiment = plumbing.use_experiment(EXPERIMENT_NAME)  # groups the runs of one task
    with mlflow.start_run(run_name=RUN_NAME) as run:
        # Params: the inputs you chose. Tags: labels to search and filter by.
        params = {"n_estimators": args.n_estimators, "max_depth": args.max_depth}
        mlflow.log_params(params | {"test_size": args.test_size, "seed": args.seed})
        tags = {"model_type": "RandomForestClassifier", "dataset": "sklearn breast_cancer"}
        mlflow.set_tags(tags | {"owner": args.owner})
        # Inputs: the rows trained and scored on (digest, schema and source,
        # under "Datasets"); the held-out rows also as a table, for load_model.py.
        for rows, context in [(training, "training"), (held_out, "evaluation")]:
            name = f"breast_cancer_{context}"
            data = mlflow.data.from_pandas(rows, name=name, targets="diagnosis", source=SOURCE)
            mlflow.log_input(data, context=context)
        mlflow.log_table(held_out, artifact_file="held_out_rows.json")

        model = RandomForestClassifier(**params, random_state=args.seed).fit(X_train, y_train)
        y_pred, metrics, plots, report = evaluate(model, X_test, y_test)
        mlflow.log_metrics(metrics)  # one call for all of them
        for name, fig in plots.items():  # artifacts: files, straight into the run's folder
            mlflow.log_figure(fig, f"plots/{name}.png")
            plt.close(fig)
        mlflow.log_text(report, "classification_report.txt")
        # The model: skops (safe, unlike pickle; the trees' type named as trusted),
        # a signature (input columns, output type), an input example, pinned requirements.
        model_info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, y_pred),
            input_example=X_test.head(5),
            serialization_format="skops",
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=plumbing.REQUIREMENTS,
        )

    plumbing.print_summary(run, experiment, metrics, model_info.model_uri)
    return {"run_id": run.info.run_id, "model_uri": model_info.model_uri, "metrics": metrics}


if __name__ == "__main__":
    main()
