"""Where the runs go, and the experiment they go to.

``MLFLOW_TRACKING_URI`` when set (a team server, say), else ``mlflow.db`` and
``mlruns/`` at the repository root, wherever a script is started from (a
relative ``sqlite:///mlflow.db`` would make a new, empty store in each folder).
"""

import atexit
import gc
import os
import traceback
import urllib.parse
from importlib.metadata import version
from pathlib import Path

from plumbing import servers, sqlite_store
from plumbing.stopping import first_line

# MLflow is imported where it is used: imported here, ahead of scikit-learn,
# it would make skops (which walks sys.modules in order) a second slower to save.

REPO_ROOT = Path(__file__).resolve().parent.parent
# A logged model's exact requirements: saves MLflow seconds of working them out.
REQUIREMENTS = [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops")]
LOCAL_TRACKING_URI = "sqlite:///" + (REPO_ROOT / "mlflow.db").as_posix()
LOCAL_ARTIFACT_ROOT = REPO_ROOT / "mlruns"
# MLflow's defaults changed (settings of your own win): it retries a stopped server for
# minutes (a participant hears in seconds), and draws a progress bar for every model
# it loads, even one of a few kilobytes read from this disk.
MLFLOW_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
# Python's full garbage collections walk every live object, 150,000 or more once MLflow,
# pandas and scikit-learn are imported, and most live to the end: gc.freeze() hides them,
# after the imports (connect) and at exit (BENCHMARKS.md measures both).
atexit.register(gc.freeze)


def tracking_uri():
    """The store this process logs to: MLFLOW_TRACKING_URI, else the repository's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


def is_local():
    return tracking_uri() == LOCAL_TRACKING_URI


def connect(missing_store_message=None, writes=False):
    """Point MLflow at the workshop's store and return its URI, or stop in one sentence.

    Without a local store yet, a script that only reads stops with
    ``missing_store_message``; with ``writes``, so does one that may not write it.
    """
    if missing_store_message and is_local() and not (REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit(missing_store_message)
    gc.freeze()
    for name, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)
    import mlflow

    uri = tracking_uri()
    _check_uri_form(uri)
    servers.check_server_answers(uri)
    sqlite_store.open_sqlite_store(uri, writes)
    mlflow.set_tracking_uri(uri)
    return uri


STORE_SCHEMES = ("http", "https", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def _check_uri_form(uri):
    scheme = urllib.parse.urlsplit(uri).scheme.partition("+")[0]  # postgresql+psycopg2, ...
    if scheme not in STORE_SCHEMES:
        raise SystemExit(
            f"MLFLOW_TRACKING_URI={uri} is not a tracking store these scripts can use: set it "
            "to http(s)://host:port, sqlite:///path/to/mlflow.db or postgresql://..., or unset "
            f"it to use {LOCAL_TRACKING_URI}."
        )


def use_experiment(name):
    """Connect, then make ``name`` the active experiment, creating it if needed.

    Locally its artifacts go to ``<repo>/mlruns/<name>/``, not MLflow's
    ``./mlruns/<id>`` under whatever folder a script starts in. Created here, not
    by ``set_experiment`` alone: in MLflow 3.17 that one, racing another script
    that creates it first, returns it without making it active.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = connect(writes=True)
    EXPERIMENT_IN_USE["name"] = name  # for a sign-in error's sentence
    try:
        if mlflow.get_experiment_by_name(name) is None:
            _create_experiment(name)
        return mlflow.set_experiment(name)
    except MlflowException as error:
        raise SystemExit(unreachable_message(uri, error)) from None


def _create_experiment(name):
    import mlflow
    from mlflow.exceptions import MlflowException

    artifact_location = (LOCAL_ARTIFACT_ROOT / name).as_uri() if is_local() else None
    try:
        mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":  # another script created it meanwhile
            raise


EXPERIMENT_IN_USE = {}


def unreachable_message(uri, error):
    """One sentence on why the store at ``uri`` refused; a team server's sign-in named as such."""
    reason = first_line(error)
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    code = getattr(error, "error_code", None)
    if code == "UNAUTHENTICATED":  # HTTP 401: no user, or a wrong password
        who = f"user {user!r} with this password" if user else "anyone without a user name"
        reason = (
            f"the server does not let in {who} (401): set MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD to your account on it."
        )
    elif code == "PERMISSION_DENIED":  # HTTP 403: signed in, but may only read (or not even)
        registry = "registered-models" in reason or "model-versions" in reason
        name = EXPERIMENT_IN_USE.get("name")
        what = _refused_model(error) if registry or not name else f"the experiment {name!r}"
        reason = (
            f"{f'user {user!r}' if user else 'you'} may not write to {what} (403): its owner "
            "or an admin must grant you EDIT permission on it (team/README.md, sign-in)."
        )
    return f"Could not use the MLflow tracking store at {uri}: {reason}"


def _refused_model(error):
    """The registered model a refused registry request was about, named by the ``name``
    argument of the model-registry store's call that sent it (each of them takes one)."""
    names = [
        frame.f_locals["name"]
        for frame, _ in traceback.walk_tb(error.__traceback__)
        if frame.f_globals.get("__name__") == "mlflow.store.model_registry.rest_store"
        and isinstance(frame.f_locals.get("name"), str)
    ]
    return f"the registered model {names[-1]!r}" if names else "the registered model"
