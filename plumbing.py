"""The workshop's plumbing: what every lesson needs that is not the lesson.

Not a lesson itself; the lessons import it so that they can stay about MLflow.

- Flag types: argparse ``type=`` functions that turn a bad value into one
  sentence and exit code 2 before any run starts.
- Where the runs go: ``MLFLOW_TRACKING_URI`` when set (a team server, say),
  else a SQLite database ``mlflow.db`` and an artifact folder ``mlruns/`` at
  the repository root, wherever a script is started from. (A relative
  ``sqlite:///mlflow.db`` would make a second, empty store in whatever folder
  you happen to be in, and `mlflow ui` would show nothing.)
- The red-wine data: ``data/winequality-red.csv``, read and checked.
- Spark, for the Spark lessons: pyspark and Java checked, a session on 127.0.0.1.
- Where to look next: the lines that tell you how to see a run in the UI, and
  compare_runs.py's chart of params against a metric.
"""

import argparse
import atexit
import errno
import gc
import os
import re
import shutil
import signal
import socket
import sys
import urllib.parse
import urllib.request
from importlib.metadata import version
from pathlib import Path

# MLflow and pandas are imported inside the functions that use them. A lesson
# imports this module first; importing MLflow here would put its ~1,500 modules
# ahead of scikit-learn's in sys.modules, and skops, which looks up every type
# it trusts by walking sys.modules in order, would then take about a second
# longer to save a model (measured on demo.py with hyperfine).

REPO_ROOT = Path(__file__).resolve().parent
# A logged model's exact requirements. Naming them saves MLflow seconds of
# working them out (it would load the model in a new process to see what it imports).
REQUIREMENTS = [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops")]

# %%
# Flags
# -----


def argument_parser(doc):
    """A parser described by the lesson's first docstring line; its --help shows defaults."""
    return argparse.ArgumentParser(
        description=doc.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def _number(convert, text):
    try:
        return convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _checked(convert, accept, requirement):
    """A flag type: ``convert`` the text, then refuse it unless ``accept(value)``."""

    def flag_type(text):
        value = _number(convert, text)
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return flag_type


INF = float("inf")
# scikit-learn keeps counts and depths in C integers: 2**31 - 1 at most.
positive_int = _checked(int, lambda v: 1 <= v < 2**31, "a whole number of at least 1, below 2**31")
# scikit-learn and NumPy take seeds from 0 to 2**32 - 1.
seed = _checked(int, lambda v: 0 <= v < 2**32, "a whole number from 0 to 4294967295")
positive_number = _checked(float, lambda v: 0 < v < INF, "a number above 0")
non_negative_number = _checked(float, lambda v: 0 <= v < INF, "a number of at least 0")
closed_fraction = _checked(float, lambda v: 0 <= v <= 1, "between 0 and 1 (inclusive)")
# A share of rows to hold out: both parts must keep enough rows to learn and to score.
holdout_fraction = _checked(float, lambda v: 0.05 <= v <= 0.95, "between 0.05 and 0.95")
port_number = _checked(int, lambda v: 1 <= v <= 65535, "a port number from 1 to 65535")


def grid(text):
    """``"50:3,100:5"`` -> ``[(50, 3), (100, 5)]``: pairs of whole numbers of at least 1."""
    pairs = []
    for pair in text.split(","):
        first, colon, second = pair.strip().partition(":")
        numbers = colon and first.isdigit() and second.isdigit()
        if not (numbers and all(0 < int(number) < 2**31 for number in (first, second))):
            raise argparse.ArgumentTypeError(f"expected pairs like 50:3,100:5, got {pair!r}")
        if (int(first), int(second)) in pairs:
            raise argparse.ArgumentTypeError(f"lists {pair.strip()!r} twice")
        pairs.append((int(first), int(second)))
    return pairs


def new_file(text):
    """A file to write: not a folder, in a folder that exists and may be written."""
    path = Path(text).resolve()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a folder")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: its folder does not exist")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: you may not write there")
    return text


def new_png(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"the chart is a PNG file: end {text} in .png")
    return new_file(text)


URI_FORMS = (
    "models:/<model_id>, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>"
)


MODEL_URI = re.compile(r"models:/[^/@]+(/[^/@]+|@[^/@]+)?|runs:/[^/@]+/[^@]+")


def model_uri(text):
    if not MODEL_URI.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected {URI_FORMS}, got {text!r}")
    return text


# %%
# Where the runs go
# -----------------
LOCAL_TRACKING_URI = "sqlite:///" + (REPO_ROOT / "mlflow.db").as_posix()
LOCAL_ARTIFACT_ROOT = REPO_ROOT / "mlruns"
UI_URL = "http://127.0.0.1:5000"
# ui.env switches off the UI's job workers and telemetry (README, "Open the MLflow UI").
UI_COMMAND = (
    "mlflow --env-file ui.env ui --workers 1 "
    "--backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000"
)
# The UI opens in its GenAI view unless a link asks for the model-training one.
UI_VIEW = "?workflowType=machine_learning"

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
    and SIGTERM stop the script between two MLflow calls, see ``_on_signal``.
    """
    if missing_store_message and is_local() and not (REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit(missing_store_message)
    gc.freeze()
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
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
    """One sentence at once when nothing listens at a tracking server's (or database's) address.

    Without this, MLflow retries a stopped server, then prints a long chain of
    connection errors (for a database server, after almost two minutes).
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
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as error:
        shown = uri.replace(f":{parts.password}@", ":***@") if parts.password else uri
        raise SystemExit(
            f"Could not use the MLflow tracking store at {shown}: nothing answers at "
            f"{host}:{port} ({error.strerror or error}); start the server or fix "
            "MLFLOW_TRACKING_URI."
        ) from None


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


def unreachable_message(uri, error):
    reason = str(error).splitlines()[0]
    return f"Could not use the MLflow tracking store at {uri}: {reason}"


# %%
# A SQLite store, made once
# -------------------------
# MLflow creates (and upgrades) a SQLite store's tables in whichever process
# opens it first, without a lock: scripts started at once on a new store all
# try, and can break it for good. Here each script opens the store under an
# exclusive lock on ``<store>.lock`` (fcntl on Linux and macOS, msvcrt on
# Windows), so the first one creates the tables and the others wait for it.
# MLflow keeps the opened store for the rest of the process.
import contextlib


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


# %%
# Ctrl+C and SIGTERM
# ------------------
# Python stops a script wherever Ctrl+C finds it, even half-way through a
# database write, which can leave the store locked and the run RUNNING. So the
# interrupt waits (up to 5 s) until the MLflow call under way has finished,
# and a second Ctrl+C does not interrupt the closing of the run. After the
# run's ``with`` block has marked it FAILED, ``_report_interrupt`` marks what
# is still unfinished (a run, a model being logged) FAILED too and says so in
# one line, no traceback, and ends the script as killed by that signal (a
# shell shows exit status 130 for Ctrl+C, 143 for SIGTERM). A full disk, which
# stops a script wherever it writes, gets the same treatment, with exit code 1.
import threading
from time import monotonic

_interrupt = {}  # the signal that stopped the script, and the runs active then
_STORE_CODE = ("mlflow.store", "mlflow.tracking", "sqlalchemy", "sqlite3", "alembic")


def _in_store_call(frame):
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_STORE_CODE):
            return True
        frame = frame.f_back
    return False


def _on_signal(signum, frame):
    if "signum" in _interrupt:  # already stopping: let the runs be closed
        return
    first = _interrupt.setdefault("first_seen", monotonic())
    if _in_store_call(frame) and monotonic() - first < 5:
        import _thread

        threading.Timer(0.05, _thread.interrupt_main, [signum]).start()
        return  # the same signal again in 50 ms
    active = sys.modules["mlflow"].active_run() if "mlflow" in sys.modules else None
    runs = [active.info.run_id, active.data.tags.get("mlflow.parentRunId")] if active else []
    _interrupt.update(signum=signum, runs=[run_id for run_id in runs if run_id])
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _close_interrupted_runs(run_ids):
    """Mark the interrupted runs and their unfinished models FAILED; say what was kept."""
    if not run_ids:
        return "no run was being logged"
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelStatus

    client = MlflowClient()
    try:
        for run_id in run_ids:
            run = client.get_run(run_id)
            if run.info.status == "RUNNING":
                client.set_terminated(run_id, "FAILED")
            where = f"source_run_id = '{run_id}'"
            for model in client.search_logged_models([run.info.experiment_id], where):
                if model.status == LoggedModelStatus.PENDING:
                    client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    except Exception as error:  # the store is gone or full: say so, and stop anyway
        reason = _disk_full(error) or str(error).strip().splitlines()[0]
        return f"run {run_ids[0]} may still show RUNNING: the store refused the update ({reason})"
    runs = f"run {run_ids[0]} is" if len(run_ids) == 1 else f"runs {' and '.join(run_ids)} are"
    return f"{runs} marked FAILED, with what {'it' if len(run_ids) == 1 else 'they'} logged"


def _disk_full(error):
    """What says the disk is full, in ``error`` or the errors it was raised from, else None."""
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return str(error)
        if "disk is full" in str(error):
            return "database or disk is full"
        error = error.__cause__ or error.__context__
    return None


def _report_stop(exc_type, error, traceback):
    """Instead of a traceback: one line for an interrupt or a full disk, and what was kept."""
    # Python turns an interrupt inside some of its machinery (a class being
    # created, say) into another error, "caused by" it: still an interrupt.
    if issubclass(exc_type, KeyboardInterrupt) or "signum" in _interrupt:
        return _report_interrupt()
    if not (_disk_full(error) and "mlflow" in sys.modules):
        return sys.__excepthook__(exc_type, error, traceback)
    with contextlib.suppress(Exception):  # the store itself may be on the full disk
        _interrupt["runs"] = [sys.modules["mlflow"].last_active_run().info.run_id]
    kept = _close_interrupted_runs(_interrupt.get("runs", []))
    print(
        f"Stopped, the disk is full ({_disk_full(error)}): {kept}; free some space.",
        file=sys.stderr,
    )


def _report_interrupt():
    signum = _interrupt.get("signum", signal.SIGINT)
    what = "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
    kept = _close_interrupted_runs(_interrupt.get("runs", []))
    print(f"Stopped by {what}: {kept}.", file=sys.stderr, flush=True)
    sys.stdout.flush()
    if os.name == "nt":
        os._exit(0xC000013A)  # what Windows reports for a program stopped by Ctrl+C
    signal.signal(signum, signal.SIG_DFL)  # then stop as that signal would have
    os.kill(os.getpid(), signum)


sys.excepthook = _report_stop


# %%
# The red-wine data
# -----------------
# P. Cortez et al., "Modeling wine preferences by data mining from
# physicochemical properties", Decision Support Systems, 2009 (UCI, CC BY 4.0):
# see data/README.md. UCI's own copy is semicolon-separated, ours
# comma-separated; both are read.
import csv

WINE_CSV = REPO_ROOT / "data" / "winequality-red.csv"
WINE_FEATURES = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
WINE_TARGET = "quality"


def load_wine_data(source=WINE_CSV):
    """The red-wine table (all columns float) from a file or an http(s) URL.

    Stops with one sentence when it cannot be read or is not this data set.
    """
    import pandas as pd

    hint = "pass the red-wine CSV with --data"
    local = not str(source).startswith(("http://", "https://"))
    if local and Path(source).exists() and not Path(source).is_file():  # /dev/zero, a folder
        raise SystemExit(f"{source} is not a file; {hint}.")
    try:
        table = pd.read_csv(source, sep=None, engine="python", encoding="utf-8-sig")
    except FileNotFoundError:
        raise SystemExit(f"There is no file {source}; {hint}.") from None
    except (OSError, ValueError, csv.Error) as error:  # offline, not text, not a CSV, empty
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SystemExit(f"Could not read {source} as a CSV file ({reason}); {hint}.") from None
    table.columns = table.columns.str.strip()
    missing = [name for name in [*WINE_FEATURES, WINE_TARGET] if name not in table.columns]
    if missing:
        raise SystemExit(
            f"{source} is not the red-wine quality data: it has no column {missing[0]!r}; {hint}."
        )
    wine = table[[*WINE_FEATURES, WINE_TARGET]].apply(pd.to_numeric, errors="coerce")
    bad_rows = wine.index[(wine.isna() | wine.abs().eq(float("inf"))).any(axis=1)]
    if wine.empty:
        raise SystemExit(f"{source} has a header but no rows; {hint}.")
    if len(bad_rows):
        line = bad_rows[0] + 2  # 1-based, after the header line
        raise SystemExit(f"{source} has a missing, non-numeric or infinite value on line {line}.")
    # Float throughout, the target too: a regression predicts fractional scores.
    return wine.astype(float)


# %%
# Spark on this machine
# ---------------------
# For the Spark lessons. pyspark drives Spark inside a Java virtual machine
# (JVM) that it starts as a child process, so pyspark and Java are checked
# before that. In local mode Spark binds to 127.0.0.1 (without SPARK_LOCAL_IP
# it binds to the machine's network address, and warns), and its JVM uses the
# quick compiler only and the simple garbage collector: a short run starts
# and warms up about a third faster (a long job on a cluster wants the JVM's
# defaults). Spark's web UI is off and its log shows errors only
# (spark-log4j2.properties). Its Python workers, where a spark_udf runs, use
# this Python instead of whatever ``python3`` is first on PATH.
import contextlib
import re
import time

SPARK_INSTALL = "pip install -r requirements-spark.txt"
JAVA_INSTALL = (
    "install Java 17 or newer (Debian, Ubuntu: apt-get install openjdk-17-jre-headless; "
    "macOS: brew install openjdk@17; Windows: Eclipse Temurin 17) or set JAVA_HOME"
)
SPARK_LOG_CONFIG = REPO_ROOT / "spark-log4j2.properties"
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
SPARK_MASTER = re.compile(r"local(\[(\*|[1-9][0-9]*)\])?|yarn|(spark|k8s)://\S+")


def spark_master(text):
    """A --master flag: local[*] (a thread per core), local[N], spark://host:port, yarn, k8s://..."""
    if not SPARK_MASTER.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected local[*], local[N], spark://host:port, yarn or k8s://..., got {text!r}"
        )
    return text


def _java_command():
    java_home = os.environ.get("JAVA_HOME")
    return shutil.which("java", path=str(Path(java_home, "bin")) if java_home else None)


@contextlib.contextmanager
def spark_session(master, app_name):
    """A SparkSession on ``master`` for the block, stopped at its end, Ctrl+C included.

    A session already active (a notebook's, a test's) is used as it is and left
    running. Without pyspark or Java: one sentence, exit code 1.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SystemExit(f"This lesson needs pyspark; install it: {SPARK_INSTALL}.") from None
    if _java_command() is None:
        where = "in JAVA_HOME" if os.environ.get("JAVA_HOME") else "on PATH"
        raise SystemExit(f"Spark runs on Java, and there is no java {where}: {JAVA_INSTALL}.")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    builder = builder.config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    java_options = ""
    if SPARK_LOG_CONFIG.is_file():  # a copy of the lessons without it gets Spark's defaults
        java_options = f"-Dlog4j2.configurationFile={SPARK_LOG_CONFIG.as_uri()}"
    if master.startswith("local"):  # on a cluster, executors elsewhere must reach the driver
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1")
        java_options += f" {LOCAL_JVM_OPTIONS}"
    builder = builder.config("spark.driver.extraJavaOptions", java_options)
    existing = SparkSession.getActiveSession()
    started = time.perf_counter()
    if existing is None:
        print(f"Starting Spark ({master}) ...", flush=True)
    spark = existing or builder.getOrCreate()
    if existing is None:
        print(f"Spark {spark.version} started in {time.perf_counter() - started:.1f} s")
    try:
        yield spark
    except KeyboardInterrupt:
        print("Stopped: the runs are marked FAILED and Spark is stopped.", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if existing is None:
            spark.stop()


# %%
# Where to look next, and what exists
# -----------------------------------


def what_exists(client, uri):
    """For an unknown model URI: what does exist, so that a typo is easy to fix."""
    from mlflow.exceptions import MlflowException

    kind, _, rest = uri.partition(":/")
    name = rest.strip("/").split("/")[0].split("@")[0]  # a run id, model id or registered name
    try:
        if kind == "runs":
            experiment_id = client.get_run(name).info.experiment_id
            models = client.search_logged_models([experiment_id], f"source_run_id = '{name}'")
            names = ", ".join(f"runs:/{name}/{model.name}" for model in models) or "none"
            return f" (this run's models: {names})"
        if name.startswith("m-"):
            return " (python compare_runs.py lists the runs and their models)"
        versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        aliases = ", ".join(f"@{a}" for a in sorted(client.get_registered_model(name).aliases))
        return f" ('{name}' has versions {', '.join(map(str, versions))} and aliases {aliases})"
    except MlflowException:  # no such run, or no such registered model
        names = [model.name for model in client.search_registered_models()]
        return "" if kind == "runs" else f" (registered models: {', '.join(names) or 'none'})"


SCRIPTS_DIR = Path(sys.executable).parent  # the environment's bin/ (Scripts\\ on Windows)


def find_command(name):
    """A command of this Python's environment, else from PATH: activating it is easy to forget."""
    found = shutil.which(name, path=str(SCRIPTS_DIR)) or shutil.which(name)
    if found is None:
        raise SystemExit(
            f"The {name} command is neither next to {sys.executable} nor on PATH: activate "
            "the workshop's virtual environment, or `pip install -r requirements.txt` into it."
        )
    return found


def check_port_free(host, port):
    """Stop with one sentence if a program already answers on ``host``:``port``."""
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((host, port)) == 0:
            raise SystemExit(
                f"Port {port} on {host} is already in use, probably by another server: "
                "stop that one, or choose another port with --port."
            )


def print_summary(run, experiment, metrics, model_uri=None, next_steps=()):
    """The run, its metrics to three decimals, its model, what to run next, where to see it."""
    print(f"Run {run.info.run_id} ({run.info.run_name}) in experiment '{experiment.name}'")
    width = max(map(len, metrics), default=0)
    for name, value in metrics.items():
        print(f"  {name:<{width}}  {value:.3f}")
    if model_uri:
        print(f"Model URI: {model_uri}")
        print(f"Load it:   python load_model.py --model-uri {model_uri}")
    for line in [*next_steps, *where_to_look(run)]:
        print(line)


def where_to_look(run):
    """Lines telling the participant how to see ``run`` in the MLflow UI."""
    uri = tracking_uri()
    path = f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}{UI_VIEW}"
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        return [f"See it in the UI: {uri.rstrip('/')}{path}"]
    if is_local():
        where, command = f"from {REPO_ROOT} run", UI_COMMAND
    else:
        command = f"mlflow ui --workers 1 --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
        where = "run"
    return [f"See it in the UI: {where}", f"  {command}", f"  then open {UI_URL}{path}"]


def plot_params(params, scores, score_label, path):
    """Draw each numeric column of ``params`` against ``scores`` (best first) into a PNG.

    One panel per param, the first (best) run in orange. matplotlib is imported
    only here (0.4 s); a bare ``Figure`` draws to a file without a window.
    """
    import pandas as pd

    params = params.apply(pd.to_numeric, errors="coerce").dropna(axis="columns")
    if params.empty:
        return print("No chart: no numeric param differs between the ranked runs.")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1 + 4 * len(params.columns), 4), layout="tight")
    axes = fig.subplots(1, len(params.columns), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, params.columns, strict=True):
        ax.scatter(params[name], scores, label="run")
        ax.scatter(params[name][:1], scores[:1], color="tab:orange", s=80, label="best run")
        ax.set_xlabel(name)
    axes[0].set_ylabel(score_label)
    axes[0].legend()
    try:
        fig.savefig(path)
    except OSError as error:  # the disk is full, or the folder changed since the flag check
        raise SystemExit(f"Could not write {path}: {error.strerror or error}.") from None
    print(f"Wrote the chart to {path}")
