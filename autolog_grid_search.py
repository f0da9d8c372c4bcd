"""Lesson 5: autologging, a grid search recorded without a single log call.

``mlflow.sklearn.autolog()`` patches scikit-learn's ``fit`` so that it logs
by itself. Here it records a small grid search (a linear RidgeClassifier,
four values of ``alpha``, 3-fold cross-validation) on the handwritten digits
of lesson 4: every setting of the search, the best ``alpha`` and its
cross-validation score, training metrics, ``cv_results.csv``, the estimator's
diagram, a training confusion matrix, the training data as the run's input,
one child run per candidate and, because ``score`` is called inside the run,
the validation score. Compare it with lesson 4, where every call is ours.

    python autolog_grid_search.py
"""

# %%
# Settings
# --------
import plumbing

RIDGE_ALPHAS = [0.1, 1.0, 10.0, 100.0]  # the candidates of the grid search
VALIDATION_SIZE = 0.25
SEED = 0
EXPERIMENT_NAME = "digits-training-curves"  # next to lesson 4's runs, on the same data
RUN_NAME = "ridge_grid_search_autolog"


def parse_args(argv):
    parser = plumbing.argument_parser(__doc__)
    parser.add_argument("--seed", type=plumbing.seed, default=SEED, help="seed for the split")
    return parser.parse_args(argv)


# %%
# 1. Data and the search
# ----------------------
# The same digits and split as lesson 4. The scaler sits inside the pipeline,
# so cross-validation learns it from each fold's training rows only.
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load_data(seed):
    data = load_digits(as_frame=True)
    return train_test_split(
        data.data, data.target, test_size=VALIDATION_SIZE, random_state=seed, stratify=data.target
    )


# %%
# 2. The autologged run
# ---------------------
# Two choices are deliberate. ``log_models=False``: autolog would save the
# search and its best model with pickle (loading pickle can run arbitrary
# code) and work out their requirements, about ten seconds per model; lesson 1
# logs a model properly. A RidgeClassifier: for models with ``predict_proba``,
# MLflow 3.17.2's autolog calls ``log_loss`` with an argument scikit-learn 1.9
# deprecated, which prints a FutureWarning. Autologging stays on for the whole
# process until it is switched off, so ``finally`` switches it off.
import mlflow


def main(argv=None):
    args = parse_args(argv)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    pipeline = make_pipeline(StandardScaler(), RidgeClassifier())
    search = GridSearchCV(pipeline, {"ridgeclassifier__alpha": RIDGE_ALPHAS}, cv=3)

    experiment = plumbing.use_experiment(EXPERIMENT_NAME)
    mlflow.sklearn.autolog(log_models=False)
    try:
        with mlflow.start_run(run_name=RUN_NAME) as run:
            search.fit(X_train, y_train)
            val_accuracy = search.score(X_val, y_val)
    finally:
        mlflow.sklearn.autolog(disable=True)

    best_alpha = search.best_params_["ridgeclassifier__alpha"]
    metrics = {"best cross-validation score": search.best_score_}
    metrics |= {"validation accuracy": val_accuracy}
    next_steps = [f"Best alpha: {best_alpha} (of {', '.join(map(str, RIDGE_ALPHAS))})"]
    plumbing.print_summary(run, experiment, metrics, next_steps=next_steps)
    return {"run_id": run.info.run_id, "best_alpha": best_alpha, "val_accuracy": val_accuracy}


if __name__ == "__main__":
    main()
