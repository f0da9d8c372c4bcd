"""Where the runs go, and the store opened safely.

``MLFLOW_TRACKING_URI`` when set (a team server, say), else a SQLite database
``mlflow.db`` and an artifact folder ``mlruns/`` at the repository root,
wherever a script is started from. (A relative ``sqlite:///mlflow.db`` would
make a second, empty store in whatever folder you happen to be in, and
`mlflow ui` would show nothing.)
"""

import atexit
import contextlib
import gc
import os
import signal
import socket
import threading
import urllib.parse
import urllib.request
from importlib.metadata import version
from pathlib import Path

from plumbing import stopping

# MLflow is imported inside the functions that use it. A lesson imports the
# plumbing first; importing MLflow here would put its ~1,500 modules ahead of
# scikit-learn's in sys.modules, and skops, which looks up every type it
# trusts by walking sys.modules in order, would then take about a second
# longer to save a model (measured on demo.py with hyperfine).

REPO_ROOT = Path(__file__).resolve().parent.parent
# A logged model's exact requirements. Naming them saves MLflow seconds of
# working them out (it would load the model in a new process to see what it imports).
REQUIREMENTS = [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops")]
LOCAL_TRACKING_URI = "sqlite:///" + (REPO_ROOT / "mlflow.db").as_posix()
LOCAL_ARTIFACT_ROOT = REPO_ROOT / "mlruns"
# MLflow retries an unreachable server for minutes by default; a participant
# should hear about a stopped server in seconds. Explicit settings win.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}

# Python's full garbage collections walk every live object: after importing
# MLflow, pandas and scikit-learn 150,000 to 300,000, most of which live until
# the script ends anyway. ``gc.freeze()`` hides the objects alive at that
# moment from the collector: once in ``connect`` (after the imports) and once
# at exit (Python's last collection would be about a second of work whose
# memory the operating system takes back anyway). BENCHMARKS.md measures both.
atexit.register(gc.freeze)


def tracking_uri():
    """The store this process logs to: MLFLOW_TRACKING_URI, else the repository's SQLite file."""
    return os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


def is_local():
    return tracking_uri() == LOCAL_TRACKING_URI


def connect(missing_store_message=None, writes=False):
    """Point MLflow at the workshop's store and return its URI.

    With ``missing_store_message``, a script that only reads stops with that
    sentence when the local store does not exist yet. A SQLite store is
    opened (created if new) under a lock, see ``_open_sqlite_store``; with
    ``writes``, one that may not be written stops the script at once. Ctrl+C
    and SIGTERM stop the script between two MLflow calls, see ``stopping.py``.
    """
    if missing_store_message and is_local() and not (REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit(missing_store_message)
    gc.freeze()
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stopping.on_signal)
    import mlflow

    uri = tracking_uri()
    _check_uri_form(uri)
    _check_server_answers(uri)
    _open_sqlite_store(uri, writes)
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


SERVER_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "mysql": 3306, "mssql": 1433}


def _check_server_answers(uri):
    """One sentence at once when nothing listens at a tracking server's (or database's)
    address, or when it listens but does not answer in time.

    Without this, MLflow retries a stopped server, then prints a long chain of
    connection errors (for a database server, after almost two minutes), and
    waits for ever on one that hangs or trickles.
    """
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.partition("+")[0]
    try:
        host, port = parts.hostname, parts.port or SERVER_PORTS.get(scheme)
    except ValueError:  # a malformed port: MLflow's own error says more
        return
    if host is None or port is None:  # SQLite, or a database on a local socket
        return
    if urllib.request.getproxies().get(scheme) and not urllib.request.proxy_bypass(host):
        return  # a proxy connects on our behalf
    shown = uri.replace(f":{parts.password}@", ":***@") if parts.password else uri
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        raise SystemExit(
            f"Could not use the MLflow tracking store at {shown}: nothing answers at "
            f"{host}:{port} ({error.strerror or error}); start the server or fix "
            "MLFLOW_TRACKING_URI."
        ) from None
    _check_server_replies(shown, f"{uri.rstrip('/')}/health", scheme, host, port)


def _check_server_replies(shown, health_url, scheme, host, port):
    """One sentence when a server accepts connections but sends no whole answer in time."""
    try:
        if scheme == "postgresql":
            _ask_postgres(host, port)
        elif scheme in ("http", "https"):
            fetch(health_url, SERVER_SECONDS)
    except TimeoutError as error:  # it hangs, or trickles
        raise SystemExit(
            f"Could not use the MLflow tracking store at {shown}: {host}:{port} accepts "
            f"connections but sent {error}; restart the server or fix MLFLOW_TRACKING_URI."
        ) from None
    except Exception:  # it answered, if only with an error or not in HTTP: MLflow says more
        pass


def _ask_postgres(host, port):
    """PostgreSQL's first exchange: "use TLS?" (an SSLRequest), answered with one byte."""
    with socket.create_connection((host, port), timeout=SERVER_SECONDS) as connection:
        connection.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        try:
            connection.recv(1)
        except TimeoutError:
            raise TimeoutError(f"no answer within {SERVER_SECONDS} s") from None


# Whole answers, not single reads, have a deadline: a server that sends one
# byte every few seconds would never trip a socket's timeout.
SERVER_SECONDS = 15


def fetch(url, seconds):
    """The body at ``url``; TimeoutError if the whole answer takes more than ``seconds``."""
    answer = {}

    def get():
        try:
            with urllib.request.urlopen(url, timeout=seconds) as response:
                answer["body"] = response.read()
        except Exception as error:  # raised in the caller's thread below
            answer["error"] = error

    worker = threading.Thread(target=get, daemon=True)  # left behind if it hangs
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no complete answer within {seconds} s")
    if "error" in answer:
        raise answer["error"]
    return answer["body"]


def use_experiment(name):
    """Connect, then make ``name`` the active experiment, creating it if needed.

    In the local store a new experiment keeps its artifacts in
    ``<repo>/mlruns/<experiment name>/`` (MLflow's default, ``./mlruns/<id>``
    under the *current* folder, would scatter them wherever a script was
    started); on a tracking server the server decides. The experiment is
    created here rather than by ``set_experiment`` alone: when several scripts
    start at once and another creates it first, MLflow 3.17's
    ``set_experiment`` returns it without making it active, and the run lands
    in "Default".
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
    reason = str(error).splitlines()[0]
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
        what = "the registered model" if registry or not name else f"the experiment {name!r}"
        reason = (
            f"user {user!r} may not write to {what} (403): its owner or an admin must grant "
            "you EDIT permission on it (team/README.md, sign-in)."
        )
    return f"Could not use the MLflow tracking store at {uri}: {reason}"


# A SQLite store, made once
# -------------------------
# MLflow creates (and upgrades) a SQLite store's tables in whichever process
# opens it first, without a lock: scripts started at once on a new store all
# try, and can break it for good. Here each script opens the store under an
# exclusive lock on ``<store>.lock`` (fcntl on Linux and macOS, msvcrt on
# Windows), so the first one creates the tables and the others wait for it.
# MLflow keeps the opened store for the rest of the process.


@contextlib.contextmanager
def _exclusive_lock(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:  # a read-only folder: nothing can be created there anyway
        yield
        return
    with open(path, "r+b") as file:  # closing the file releases the lock
        if os.name == "nt":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)  # tries for 10 s
                    break
                except OSError:  # still held by another script: keep waiting
                    continue
        else:
            import fcntl

            fcntl.flock(file, fcntl.LOCK_EX)
        yield


def _open_sqlite_store(uri, writes):
    """Open (and if new, create) the SQLite store at ``uri`` under the lock; one sentence if not."""
    if not uri.startswith("sqlite:///") or ":memory:" in uri:
        return
    from mlflow import MlflowClient

    path = Path(urllib.parse.unquote(uri.removeprefix("sqlite:///").partition("?")[0]))
    if writes and path.exists() and not all(os.access(p, os.W_OK) for p in (path, path.parent)):
        raise SystemExit(store_problem(path, PermissionError("it is read-only for you")))
    try:
        with _exclusive_lock(path.with_name(path.name + ".lock")):
            MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # whatever the reason, the store cannot be used
        raise SystemExit(store_problem(path, error)) from None


def store_problem(path, error):
    """One sentence on why the SQLite store ``path`` cannot be used, and the way out."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "full" in reason:
        advice = f"free some space on the disk that holds {path.parent}"
    elif "readonly" in reason or "unable to open" in reason or isinstance(error, PermissionError):
        advice = f"make {path} and its folder writable for you, or use another store"
    else:  # not a database, malformed, or left half-upgraded by an earlier failure
        advice = (
            f"move it aside (rename {path.name} to {path.name}.broken) and the next script "
            "starts a new store there"
        )
    return f"Could not use the MLflow store {path} ({reason}): {advice}."
