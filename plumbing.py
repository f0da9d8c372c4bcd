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
import gc
import os
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
positive_int = _checked(int, lambda v: v >= 1, "a whole number of at least 1")
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
        if not (colon and first.isdigit() and second.isdigit() and min(int(first), int(second))):
            raise argparse.ArgumentTypeError(f"expected pairs like 50:3,100:5, got {pair!r}")
        if (int(first), int(second)) in pairs:
            raise argparse.ArgumentTypeError(f"lists {pair.strip()!r} twice")
        pairs.append((int(first), int(second)))
    return pairs


def new_file(text):
    """A file to write: its folder must exist."""
    if not Path(text).resolve().parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: its folder does not exist")
    return text


def new_png(text):
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"the chart is a PNG file: end {text} in .png")
    return new_file(text)


URI_FORMS = (
    "models:/<model_id>, runs:/<run_id>/model, models:/<name>/<version> or models:/<name>@<alias>"
)


def model_uri(text):
    scheme, _, rest = text.partition(":/")
    if scheme not in ("models", "runs") or not rest.strip("/"):
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


def connect(missing_store_message=None):
    """Point MLflow at the workshop's store and return its URI.

    With ``missing_store_message``, a script that only reads stops with that
    sentence when the local store does not exist yet. SIGTERM ends the
    process like Ctrl+C does, so an active run is closed as FAILED instead of
    staying RUNNING.
    """
    if missing_store_message and is_local() and not (REPO_ROOT / "mlflow.db").is_file():
        raise SystemExit(missing_store_message)
    gc.freeze()
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    import mlflow

    uri = tracking_uri()
    _check_server_answers(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def _exit_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def _check_server_answers(uri):
    """One sentence at once when nothing listens at a tracking server's address.

    Without this, MLflow retries a stopped server, then prints a long chain of
    connection errors.
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

    uri = connect()
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
    fig.savefig(path)
    print(f"Wrote the chart to {path}")
