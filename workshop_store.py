"""Where the workshop's runs go, shared by every lesson script.

Not a lesson itself: plumbing that each script needs and that would otherwise
be copied into all of them.

- ``MLFLOW_TRACKING_URI`` set (a team server, for example): runs go there.
- Otherwise: a SQLite database ``mlflow.db`` and an artifact folder ``mlruns/``
  at the repository root, wherever the script is started from. A relative
  ``sqlite:///mlflow.db`` would create a second, empty store in whatever
  folder you happen to be in, and `mlflow ui` would show nothing.

It also keeps Python's garbage collector from slowing the scripts down (see
``gc.freeze`` below).
"""

import atexit
import gc
import os
import signal
import socket
import urllib.parse
import urllib.request
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

REPO_ROOT = Path(__file__).resolve().parent
LOCAL_TRACKING_URI = "sqlite:///" + (REPO_ROOT / "mlflow.db").as_posix()
LOCAL_ARTIFACT_ROOT = REPO_ROOT / "mlruns"
UI_URL = "http://127.0.0.1:5000"
UI_COMMAND = "mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000"

# MLflow retries an unreachable server for minutes by default; a participant
# should hear about a stopped server in seconds. Explicit settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}

# The garbage collector. Python's full garbage collections walk every object
# alive: after importing MLflow, pandas and scikit-learn 150,000 to 300,000,
# most of which live until the script ends anyway. ``gc.freeze()`` takes the
# objects alive at that moment out of the collector's sight. The scripts
# freeze twice:
# - in ``connect``, which each script's ``main`` calls before its MLflow work,
#   so that the collections during that work walk only what it created since;
# - at exit, so that Python's last collection, about a second of work whose
#   memory the operating system takes back anyway, skips them.
# BENCHMARKS.md measures both.
atexit.register(gc.freeze)


def tracking_uri():
    """The store this process logs to: MLFLOW_TRACKING_URI, else the repository's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


def is_local():
    return tracking_uri() == LOCAL_TRACKING_URI


def connect():
    """Point MLflow at the workshop's store and return its URI.

    Also makes SIGTERM end the process like Ctrl+C does, so that an active run
    is closed as FAILED instead of staying RUNNING forever.
    """
    gc.freeze()  # what the imports created: see "The garbage collector" above
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uri = tracking_uri()
    _check_server_answers(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _check_server_answers(uri):
    """Stop at once with one sentence when nothing listens at a tracking server's address.

    Without this, MLflow retries a stopped server and then prints a long
    chain of connection errors.
    """
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a malformed port: MLflow's own error says more
        return
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return  # a proxy connects on our behalf
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        raise SystemExit(
            f"Could not use the MLflow tracking store at {uri}: nothing answers at "
            f"{host}:{port} ({error.strerror or error}); start the server or fix "
            "MLFLOW_TRACKING_URI."
        ) from None


def use_experiment(name):
    """Connect, then make ``name`` the active experiment, creating it if needed.

    In the local store a new experiment keeps its artifacts in
    ``<repo>/mlruns/<experiment name>/``: MLflow's default location would be
    ``mlruns/<experiment id>`` under the *current* folder, which scatters
    artifacts wherever a script was started. On a tracking server the server
    decides where artifacts live.

    The experiment is created here rather than by ``set_experiment``: when
    several scripts start at once and another one creates it first, MLflow
    3.17's ``set_experiment`` returns it without making it active, and the
    run silently lands in the "Default" experiment.
    """
    uri = connect()
    try:
        if mlflow.get_experiment_by_name(name) is None:
            _create_experiment(name)
        return mlflow.set_experiment(name)
    except MlflowException as error:
        raise SystemExit(unreachable_message(uri, error)) from None


def _create_experiment(name):
    artifact_location = (LOCAL_ARTIFACT_ROOT / name).as_uri() if is_local() else None
    try:
        mlflow.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":  # another script created it meanwhile
            raise


def unreachable_message(uri, error):
    reason = str(error).splitlines()[0]
    return f"Could not use the MLflow tracking store at {uri}: {reason}"


def where_to_look(run):
    """Lines telling the participant how to see ``run`` in the MLflow UI."""
    uri = tracking_uri()
    path = f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        return [f"See it in the UI: {uri.rstrip('/')}{path}"]
    if is_local():
        where, command = f"from {REPO_ROOT} run", UI_COMMAND
    else:
        where, command = "run", f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
    return [f"See it in the UI: {where}", f"  {command}", f"  then open {UI_URL}{path}"]


def _exit_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")
