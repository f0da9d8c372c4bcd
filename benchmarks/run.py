"""Benchmark the workshop's scripts against tutorial-style baselines and write BENCHMARKS.md.

Run from the repository root, on a machine that is otherwise idle:

    python -m benchmarks.run                 # everything except set-up, ~15 min on 2 cores
    python -m benchmarks.run --setup         # also time a new venv + pip install + demo.py
    python -m benchmarks.run --quick --only demo --output /tmp/bench.md   # a smoke test
    python -m benchmarks.run --setup --json raw.json   # keep the raw measurements, then
    python -m benchmarks.run --setup --render raw.json # rewrite the report without measuring

Every measurement runs in a fresh process against a fresh store in a temporary
folder (the repository's own mlflow.db is never touched), with MLflow's
telemetry switched off so nothing leaves 127.0.0.1. Servers bind to 127.0.0.1
on a free port and are always stopped.

- Scripts (demo.py, train_wine_elasticnet.py, train_iris_sweep.py,
  track_training_curves.py) and their baselines in benchmarks/baselines/ run
  through benchmarks/phases.py, which splits each run's wall time into
  start-up, import, training, tracking and model logging. "cold" is the first
  run in a new store (MLflow creates its tables), "warm" the next run in the
  same store. Workshop and baseline alternate which goes first.
- Step metrics: benchmarks/step_metrics.py, against SQLite and a local
  ``mlflow server``.
- compare_runs.py: an experiment of 1,000 runs made by benchmarks/fill_store.py.
- Serving: ``serve_model.py`` (and plain ``mlflow models serve`` for the
  baseline's model), timed from a keep-alive HTTP client on loopback.
- ``--setup``: a new virtual environment, ``pip install -r requirements.txt``,
  then ``python demo.py``; minutes, so only on request.
"""

import argparse
import ast
import contextlib
import http.client
import json
import math
import os
import platform
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
BASELINES = BENCH_DIR / "baselines"
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "winequality-red.csv"
PYTHON = sys.executable
SCRIPTS_DIR = Path(PYTHON).parent
SECTIONS = ("demo", "wine", "sweep", "curves", "steps", "compare", "serving", "setup")
PHASES = ("startup", "import", "training", "tracking", "model", "exit")
IN_PROCESS_PHASES = ("import", "training", "tracking", "model")  # between start-up and exit
PHASE_TITLES = {
    "startup": "Python start",
    "exit": "exit",
    "import": "import",
    "training": "training & evaluation",
    "tracking": "tracking calls",
    "model": "model logging",
}
# Environment variables that would point a measured process somewhere else.
STRIPPED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_ENABLE_ASYNC_LOGGING",
    "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS",
)
# The benchmark keeps about one core busy (two while a server and a client run).
BUSY_DURING_RUN = 2.5
# Say so in the report when script processes read at least this many megabytes
# from disk (a median): their imports were slowed by a cold file cache.
DISK_READ_NOTE_MB = 5
TARGET_RATIO = 0.6
TARGET_STEP_SECONDS = 1.0
TARGET_COMPARE_SECONDS = 2.0
TARGET_SERVING_P50_MS = 15.0


# ---------------------------------------------------------------------------
# Plumbing: environments, folders, processes, statistics
# ---------------------------------------------------------------------------


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
    # Telemetry would try to reach the internet; the benchmark talks to 127.0.0.1 only.
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    env["PATH"] = os.pathsep.join([str(SCRIPTS_DIR), env.get("PATH", "")])
    env.update(extra)
    return env


class Workspace:
    """A temporary folder for all measurements, removed at the end unless ``keep``."""

    def __init__(self, keep=False):
        self.root = Path(tempfile.mkdtemp(prefix="workshop-bench-"))
        self.keep = keep
        self.count = 0

    def new(self, name, scripts=()):
        """A new folder holding copies of ``scripts``, committed to a new git repository.

        Participants run the scripts in a git clone, and MLflow records the commit
        of the script it runs, which costs time; so every measured script runs
        from a repository too. A copy of the workshop keeps its store (mlflow.db,
        mlruns/) next to the scripts, where workshop_store puts it.
        """
        self.count += 1
        folder = self.root / f"{self.count:03d}-{name}"
        folder.mkdir()
        for script in scripts:
            shutil.copy2(script, folder / Path(script).name)
        if scripts:
            git = ["git", "-c", "user.name=benchmark", "-c", "user.email=benchmark@localhost"]
            for command in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "scripts"]):
                subprocess.run([*git, *command], cwd=folder, check=True, capture_output=True)
        return folder

    def close(self):
        if self.keep:
            print(f"Kept the measurement folders in {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


class BenchmarkError(RuntimeError):
    pass


def workshop_scripts():
    return sorted(REPO_ROOT.glob("*.py"))


def run_phased(script, args, cwd, timeout=900, gc_freeze=True):
    """One process running ``script``'s main() through phases.py; returns wall time and phases.

    ``gc_freeze=False`` makes ``gc.freeze()`` a no-op in that process.
    """
    result_path = Path(cwd) / f".phases-{time.monotonic_ns()}.json"
    command = [PYTHON, str(BENCH_DIR / "phases.py")]
    command += [] if gc_freeze else ["--no-gc-freeze"]
    command += [str(result_path), str(script), *args]
    reads_before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock
    spawned, started = time.time(), time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=timeout
    )
    wall = time.perf_counter() - started
    # Blocks of 512 bytes the process read from disk rather than the file cache.
    blocks_read = resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock - reads_before
    ended = spawned + wall
    if done.returncode != 0 or not result_path.is_file():
        raise BenchmarkError(
            f"{Path(script).name} {' '.join(args)} failed with exit code {done.returncode}:\n"
            + (done.stdout[-2000:] + done.stderr[-3000:])
        )
    measured = json.loads(result_path.read_text())
    result_path.unlink()
    phases = dict(measured["phases"])
    # Start: spawning the process until phases.py's first line; its own few imports
    # (json, importlib) are so small that they count as start-up too.
    phases["exit"] = max(ended - measured["finished_at"], 0.0)
    phases["startup"] = max(wall - measured["seconds_in_process"] - phases["exit"], 0.0)
    return {
        "wall": wall,
        "phases": phases,
        "calls": measured["calls"],
        "all_calls": measured["all_calls"],
        "disk_read_mb": blocks_read * 512 / 1e6,
        "stdout": done.stdout[-4000:],
    }


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def background(command, cwd, log_path, env=None):
    """A server process in its own process group, always stopped with all its workers."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env or child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def wait_for_http(url, process, log_path, timeout=240):
    """Seconds until ``url`` answers 200; a server that exits first is an error."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            log = Path(log_path).read_text(errors="replace")[-3000:]
            raise BenchmarkError(f"server exited with code {process.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchmarkError(f"{url} did not answer within {timeout} s")


def summary(values):
    values = sorted(values)
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "n": len(values),
    }


def lesson_constant(script, name, default=None):
    """A module-level constant of a lesson script, read without importing it."""
    path = REPO_ROOT / script
    if not path.is_file():
        return default
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            with contextlib.suppress(ValueError):
                return ast.literal_eval(node.value)
    return default


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------
# 1. Scripts against baselines
# ---------------------------------------------------------------------------


@dataclass
class ScriptCase:
    key: str
    script: str
    baseline: str
    args: list = field(default_factory=list)
    baseline_args: list = field(default_factory=list)
    needs: str | None = None  # a reason to skip, when something is missing


def script_cases(options):
    quick = options.quick
    n_estimators = 10 if quick else lesson_constant("demo.py", "N_ESTIMATORS", 100)
    grid = lesson_constant("train_iris_sweep.py", "GRID", [(10, 2), (50, 3), (100, 5), (200, 10)])
    grid_text = "5:2,10:3" if quick else ",".join(f"{n}:{d}" for n, d in grid)
    epochs = 3 if quick else lesson_constant("track_training_curves.py", "EPOCHS", 30)
    data = str(options.data) if options.data else None
    data_missing = (
        None
        if options.data and options.data.is_file()
        else f"no wine data at {options.data or DEFAULT_DATA} (pass --data PATH)"
    )
    return [
        ScriptCase(
            "demo",
            "demo.py",
            "baseline_demo.py",
            ["--n-estimators", str(n_estimators)],
            ["--n-estimators", str(n_estimators)],
        ),
        ScriptCase(
            "wine",
            "train_wine_elasticnet.py",
            "baseline_wine_elasticnet.py",
            ["--data", data or ""],
            ["--data", data or ""],
            needs=data_missing,
        ),
        ScriptCase(
            "sweep",
            "train_iris_sweep.py",
            "baseline_iris_sweep.py",
            ["--grid", grid_text],
            ["--grid", grid_text],
        ),
        ScriptCase(
            "curves",
            "track_training_curves.py",
            "baseline_training_curves.py",
            ["--epochs", str(epochs)],
            ["--epochs", str(epochs)],
        ),
    ]


def bench_script(case, options, workspace, kept):
    missing = [p for p in (REPO_ROOT / case.script, BASELINES / case.baseline) if not p.is_file()]
    if missing:
        return {"skipped": f"{missing[0].name} does not exist yet"}
    if case.needs:
        return {"skipped": case.needs}
    sides = {
        "workshop": (case.script, case.args, workshop_scripts()),
        "baseline": (case.baseline, case.baseline_args, [BASELINES / case.baseline]),
    }
    runs = {side: {"cold": [], "warm": []} for side in sides}
    for repetition in range(options.repeat):
        order = list(sides) if repetition % 2 == 0 else list(reversed(sides))
        for side in order:
            script, args, scripts = sides[side]
            folder = workspace.new(f"{case.key}-{side}", scripts)
            path = folder / script
            for state in ("cold", "warm"):
                progress(f"{case.script:<26} {side:<8} {state} ({repetition + 1}/{options.repeat})")
                runs[side][state].append(run_phased(path, args, folder))
            kept[(case.key, side)] = (folder, path, args)
    return {"runs": runs, "args": case.args, "baseline": f"benchmarks/baselines/{case.baseline}"}


def profile_script(folder, script, args, top=14):
    """cProfile one warm run; the top entries by cumulative time and selected MLflow internals."""
    out = Path(folder) / f".profile-{time.monotonic_ns()}.prof"
    command = [PYTHON, "-m", "cProfile", "-o", str(out), str(script), *args]
    done = subprocess.run(command, cwd=folder, env=child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    stats = pstats.Stats(str(out))
    entries = []
    for (filename, line, function), (_, calls, _, cumulative, _) in stats.stats.items():
        entries.append((cumulative, calls, short_function(filename, line, function)))
    total = max(entry[0] for entry in entries)
    boring = (
        "<frozen ",
        "<built-in method builtins.",
        "<method 'acquire'",
        "<built-in method _imp.",
    )
    boring += ("importlib/__init__.py",)
    top_entries = [e for e in sorted(entries, reverse=True) if not e[2].startswith(boring)]
    internals = selected_internals(stats, PROFILE_INTERNALS)
    out.unlink()
    return {"total": total, "top": top_entries[:top], "internals": internals}


def selected_internals(stats, wanted):
    """(label, cumulative seconds) for each wanted (label, file part, function) in a profile."""
    found = []
    for label, file_part, function in wanted:
        seconds = sum(
            cumulative
            for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items()
            if name == function and file_part in filename.replace(os.sep, "/")
        )
        if seconds:
            found.append((label, seconds))
    return found


# The same calls against a tracking server, seen from the client: the server's
# work (the store's, as above, plus decoding JSON) is inside the HTTP wait.
LOG_BATCH_SERVER_INTERNALS = [
    ("`MlflowClient.log_batch`, all of it", "mlflow/tracking/client.py", "log_batch"),
    ("client: points to protobuf messages", "mlflow/entities/metric.py", "to_proto"),
    ("client: protobuf to JSON", "mlflow/utils/proto_json_utils.py", "message_to_json"),
    ("HTTP: send, wait for the server, read", "mlflow/utils/rest_utils.py", "http_request"),
]

LOG_BATCH_INTERNALS = [
    ("`MlflowClient.log_batch`, all of it", "mlflow/tracking/client.py", "log_batch"),
    (
        "the SQLAlchemy store's `log_batch`",
        "mlflow/store/tracking/sqlalchemy_store.py",
        "log_batch",
    ),
    (
        "build and insert one row per point",
        "mlflow/store/tracking/sqlalchemy_store.py",
        "_insert_metrics",
    ),
    (
        "update each metric's latest value",
        "mlflow/store/tracking/sqlalchemy_store.py",
        "_update_latest_metrics_if_necessary",
    ),
    ("SQLAlchemy: flush objects to SQL", "sqlalchemy/orm/session.py", "flush"),
    ("SQLAlchemy: commit", "sqlalchemy/orm/session.py", "commit"),
]


def short_function(filename, line, function):
    if filename == "~":  # a built-in function
        return function
    filename = filename.replace(os.sep, "/")
    for marker in ("site-packages/", "/lib/python3."):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            if marker.startswith("/lib"):
                filename = filename.split("/", 1)[-1]
            break
    else:
        filename = Path(filename).name if filename.startswith("/") else filename
    return f"{filename}:{line}({function})" if line else f"{filename}({function})"


PROFILE_INTERNALS = [
    ("`mlflow.sklearn.log_model`, all of it", "mlflow/models/model.py", "log"),
    (
        "infer pip requirements (loads the model in a subprocess)",
        "mlflow/utils/requirements_utils.py",
        "_infer_requirements",
    ),
    (
        "check the requirements against installed packages",
        "mlflow/utils/requirements_utils.py",
        "warn_dependency_requirement_mismatches",
    ),
    (
        "scan the installed distributions (once per process)",
        "importlib_metadata/__init__.py",
        "packages_distributions",
    ),
    ("record the git commit (start_run)", "mlflow/utils/git_utils.py", "get_git_commit"),
    (
        "validate the input example (loads the model back, predicts)",
        "mlflow/models/utils.py",
        "_validate_serving_input",
    ),
    ("save the input example", "mlflow/models/utils.py", "_save_example"),
    ("infer the signature", "mlflow/models/signature.py", "infer_signature"),
    ("skops: write the model file", "skops/io/_persist.py", "dump"),
    ("skops: read the model file", "skops/io/_persist.py", "load"),
    (
        "open the SQLite store (incl. creating tables)",
        "mlflow/store/db/utils.py",
        "_initialize_tables",
    ),
    ("`set_experiment`", "mlflow/tracking/fluent.py", "set_experiment"),
    ("`search_runs` calls", "mlflow/tracking/client.py", "search_runs"),
    ("`log_batch` calls", "mlflow/tracking/client.py", "log_batch"),
    ("draw PNGs (`savefig`)", "matplotlib/figure.py", "savefig"),
]


# ---------------------------------------------------------------------------
# 2. Step-metric throughput
# ---------------------------------------------------------------------------


def lesson_batch_size():
    """Points per call as track_training_curves.py sends them when they come quickly."""
    batch = lesson_constant("track_training_curves.py", "LOG_BATCH_POINTS")
    names = lesson_constant("track_training_curves.py", "STEP_METRICS")
    return batch, len(names) if names else 4


def step_worker(uri, folder, options, lesson_batch, metrics, methods=None, profile=None):
    """Run benchmarks/step_metrics.py once; ``profile``: also write a cProfile there."""
    result = Path(folder) / f".steps-{time.monotonic_ns()}.json"
    if methods is None:
        methods = "per_value,per_step,batch_1000,async,async_buffered"
        if lesson_batch:
            methods += ",batch_lesson"
    command = [PYTHON, str(BENCH_DIR / "step_metrics.py"), "--tracking-uri", uri]
    command += ["--points", str(options.points), "--budget", str(options.budget)]
    command += ["--metrics", str(metrics), "--methods", methods, "--result", str(result)]
    command += ["--lesson-batch", str(lesson_batch or 1000)]
    if profile:
        command += ["--profile", str(profile)]
    done = subprocess.run(command, cwd=folder, env=child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"step_metrics.py failed:\n{done.stdout[-1500:]}{done.stderr[-3000:]}")
    return json.loads(result.read_text())


def profile_log_batch(uri, folder, options, lesson_batch, metrics, internals):
    """The ``internals`` of one profiled ``log_batch`` run, or None if it failed."""
    profile = Path(folder) / "log_batch.prof"
    with contextlib.suppress(BenchmarkError):  # a profile only adds detail to the report
        step_worker(uri, folder, options, lesson_batch, metrics, "batch_1000", profile)
        return selected_internals(pstats.Stats(str(profile)), internals)
    return None


def bench_steps(options, workspace):
    lesson_batch, metrics = lesson_batch_size()
    results = {"lesson_batch": lesson_batch, "metrics": metrics, "points": options.points}
    results["lesson_seconds"] = lesson_constant("track_training_curves.py", "LOG_EVERY_SECONDS")
    results["sqlite"] = []
    for repetition in range(options.repeat):
        progress(f"step metrics, SQLite ({repetition + 1}/{options.repeat})")
        folder = workspace.new("steps-sqlite")
        uri = "sqlite:///" + (folder / "steps.db").as_posix()
        results["sqlite"].append(step_worker(uri, folder, options, lesson_batch, metrics))
    progress("step metrics, SQLite: profiling log_batch")
    folder = workspace.new("steps-profile")
    uri = "sqlite:///" + (folder / "steps.db").as_posix()
    results["batch_profile"] = profile_log_batch(
        uri, folder, options, lesson_batch, metrics, LOG_BATCH_INTERNALS
    )
    folder = workspace.new("steps-server")
    port = free_port()
    command = [str(SCRIPTS_DIR / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", "sqlite:///" + (folder / "server.db").as_posix()]
    command += ["--artifacts-destination", str(folder / "artifacts")]
    progress("step metrics: starting a local mlflow server")
    log = folder / "server.log"
    with background(command, folder, log) as server:
        url = f"http://127.0.0.1:{port}"
        results["server_startup"] = wait_for_http(f"{url}/health", server, log)
        results["server"] = []
        for repetition in range(options.repeat):
            progress(f"step metrics, tracking server ({repetition + 1}/{options.repeat})")
            results["server"].append(step_worker(url, folder, options, lesson_batch, metrics))
        progress("step metrics, tracking server: profiling log_batch")
        results["server_batch_profile"] = profile_log_batch(
            url, folder, options, lesson_batch, metrics, LOG_BATCH_SERVER_INTERNALS
        )
    return results


# ---------------------------------------------------------------------------
# 3. compare_runs.py over many runs
# ---------------------------------------------------------------------------


def bench_compare(options, workspace):
    if not (REPO_ROOT / "compare_runs.py").is_file():
        return {"skipped": "compare_runs.py does not exist yet"}
    folder = workspace.new("compare", [*workshop_scripts(), BASELINES / "baseline_compare_runs.py"])
    uri = "sqlite:///" + (folder / "mlflow.db").as_posix()
    artifacts = (folder / "mlruns" / "wine-quality-elasticnet").as_uri()
    progress(f"compare: creating {options.runs} runs")
    started = time.perf_counter()
    command = [PYTHON, str(BENCH_DIR / "fill_store.py"), "--tracking-uri", uri]
    command += ["--runs", str(options.runs), "--artifact-location", artifacts]
    done = subprocess.run(command, cwd=folder, env=child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"fill_store.py failed:\n{done.stderr[-3000:]}")
    fill_seconds = time.perf_counter() - started
    search = ["--filter", "metrics.rmse < 1", "--order-by", "metrics.rmse ASC"]
    workshop = (folder / "compare_runs.py", [*search, "--max-results", str(options.runs)])
    variants = {"workshop": workshop, "baseline": (folder / "baseline_compare_runs.py", search)}
    # The same command with gc.freeze() turned off measures what freezing saves.
    variants["workshop_no_freeze"] = workshop
    if not options.quick:  # the defaults too, except in a smoke test
        variants["workshop_default"] = (folder / "compare_runs.py", [])
    runs = {name: [] for name in variants}
    floor = []
    for repetition in range(options.repeat):
        for name, (script, args) in variants.items():
            progress(f"compare_runs {name} ({repetition + 1}/{options.repeat})")
            freeze = name != "workshop_no_freeze"
            runs[name].append(run_phased(script, args, folder, gc_freeze=freeze))
        floor.append(time_store_floor(uri, folder))
    return {
        "runs": runs,
        "floor": floor,
        "n_runs": options.runs,
        "fill_seconds": fill_seconds,
        "args": variants["workshop"][1],
        "folder": folder,
    }


# The least any script reading this store can take: start Python, import
# MLflow, open the store, one request, exit (freezing the garbage collector's
# view after the imports and at exit, as the workshop's scripts do).
STORE_FLOOR_CODE = """\
import atexit, gc
atexit.register(gc.freeze)
from mlflow import MlflowClient
gc.freeze()
MlflowClient({uri!r}).search_experiments()
"""


def time_store_floor(uri, folder):
    started = time.perf_counter()
    code = STORE_FLOOR_CODE.format(uri=uri)
    subprocess.run([PYTHON, "-c", code], cwd=folder, env=child_env(), check=True)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------
# 4. Serving
# ---------------------------------------------------------------------------


def iris_request_bodies():
    from sklearn.datasets import load_iris

    features = load_iris(as_frame=True).data
    columns = list(features.columns)
    rows = features.to_numpy().tolist()
    return {
        size: json.dumps({"dataframe_split": {"columns": columns, "data": rows[:size]}})
        for size in (1, 100)
    }


def load_test(port, body, requests, warmup, path="/invocations"):
    """Sequential requests on one keep-alive connection; latencies in milliseconds.

    POST ``body`` to ``path``, or GET ``path`` when there is no body.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    method = "GET" if body is None else "POST"
    latencies = []
    try:
        for index in range(warmup + requests):
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                raise BenchmarkError(f"{path} answered {response.status}: {payload[:300]}")
            if index >= warmup:
                latencies.append(elapsed * 1000)
    finally:
        connection.close()
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))],
        "mean": statistics.fmean(ordered),
        "requests_per_second": len(ordered) / (sum(ordered) / 1000),
        "requests": len(ordered),
    }


def ensure_iris_stores(options, workspace, kept):
    """The folders holding a registered iris champion: from the sweep section, or made now."""
    stores = {}
    sweep = next(case for case in script_cases(options) if case.key == "sweep")
    for side, script, args in (
        ("workshop", "train_iris_sweep.py", sweep.args),
        ("baseline", "baseline_iris_sweep.py", sweep.baseline_args),
    ):
        if ("sweep", side) in kept:
            stores[side] = kept[("sweep", side)][0]
            continue
        progress(f"serving: making a {side} iris model")
        scripts = workshop_scripts() if side == "workshop" else [BASELINES / script]
        folder = workspace.new(f"serving-{side}", scripts)
        path = folder / script
        run_phased(path, args, folder)
        stores[side] = folder
    return stores


def bench_serving(options, workspace, kept):
    if not (REPO_ROOT / "serve_model.py").is_file():
        return {"skipped": "serve_model.py does not exist yet"}
    stores = ensure_iris_stores(options, workspace, kept)
    bodies = iris_request_bodies()
    results = {}
    for side in ("workshop", "baseline"):
        folder, port = stores[side], free_port()
        if side == "workshop":
            command = [PYTHON, "serve_model.py", "--port", str(port)]
        else:
            command = [str(SCRIPTS_DIR / "mlflow"), "models", "serve", "-m"]
            command += ["models:/iris_classifier@champion", "--env-manager", "local"]
            command += ["--host", "127.0.0.1", "--port", str(port)]
        log = folder / f"serve-{side}.log"
        progress(f"serving: starting the {side} model server")
        with background(command, folder, log) as server:
            startup = wait_for_http(f"http://127.0.0.1:{port}/ping", server, log)
            side_results = {"startup": startup}
            for size, body in bodies.items():
                blocks = []
                for repetition in range(options.repeat):
                    progress(f"serving: {side}, {size} row(s) ({repetition + 1}/{options.repeat})")
                    blocks.append(load_test(port, body, options.requests, warmup=20))
                side_results[size] = blocks
            # The floor: the same server answering GET /ping, no model involved.
            side_results["ping"] = load_test(port, None, options.requests, warmup=20, path="/ping")
        progress(f"serving: timing the {side} model's predict() in-process")
        side_results["in_process"] = predict_latency(folder, options)
        results[side] = side_results
    return results


def predict_latency(folder, options):
    result = Path(folder) / f".predict-{time.monotonic_ns()}.json"
    command = [PYTHON, str(BENCH_DIR / "predict_latency.py"), "--result", str(result)]
    command += ["--tracking-uri", "sqlite:///" + (Path(folder) / "mlflow.db").as_posix()]
    command += ["--model-uri", "models:/iris_classifier@champion"]
    command += ["--largest-of", "iris_classifier", "--repeats", str(min(options.requests, 100))]
    done = subprocess.run(command, cwd=folder, env=child_env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"predict_latency.py failed:\n{done.stderr[-3000:]}")
    return json.loads(result.read_text())


# ---------------------------------------------------------------------------
# 5. Set-up: from an empty virtual environment to a finished demo.py
# ---------------------------------------------------------------------------


def bench_setup(workspace):
    folder = workspace.new("setup")
    venv = folder / "venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    steps = {}

    def timed(name, command, cwd):
        progress(f"set-up: {name}")
        started = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True)
        steps[name] = time.perf_counter() - started
        if done.returncode != 0:
            raise BenchmarkError(f"set-up step {name!r} failed:\n{done.stderr[-3000:]}")

    timed("python -m venv", [PYTHON, "-m", "venv", str(venv)], folder)
    install = [str(python), "-m", "pip", "install", "--quiet", "-r"]
    timed(
        "pip install -r requirements.txt", [*install, str(REPO_ROOT / "requirements.txt")], folder
    )
    app = workspace.new("setup-app", workshop_scripts())
    timed("first python demo.py (new store, new venv)", [str(python), "demo.py"], app)
    timed("second python demo.py", [str(python), "demo.py"], app)
    cache = subprocess.run(
        [str(python), "-m", "pip", "cache", "dir"], capture_output=True, text=True
    ).stdout.strip()
    cache_size = (
        sum(f.stat().st_size for f in Path(cache).rglob("*") if f.is_file()) if cache else 0
    )
    packages = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.count("\n")
    # Where pip looked for packages: a local wheel folder is much faster than PyPI.
    config = subprocess.run(
        [str(python), "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout.splitlines()
    sources = [line for line in config if "index-url" in line or "find-links" in line]
    sources += [
        f"{name}={os.environ[name]}"
        for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")
        if os.environ.get(name)
    ]
    return {
        "steps": steps,
        "pip_cache_mb": cache_size / 1e6,
        "packages": packages,
        "pip_sources": sources,
    }


LOCAL_PACKAGES = "a local folder of packages"


def pip_source_kinds(sources):
    """The kinds of places pip's settings name, not their addresses (the report is committed)."""
    kinds = set()
    for source in sources:  # "global.find-links='/opt/x'" or "PIP_INDEX_URL=https://..."
        for value in source.split("=", 1)[-1].strip("'\"").split():
            local = value.startswith(("file:", "/", ".", "~")) or bool(Path(value).drive)
            kinds.add(LOCAL_PACKAGES if local else "a package index other than its default")
    return sorted(kinds)


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------


def machine_info():
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB RAM"
    packages = {}
    for name in ("mlflow", "scikit-learn", "skops", "pandas", "sqlalchemy"):
        with contextlib.suppress(Exception):
            packages[name] = version(name)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": packages,
        "load": load_average(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_average():
    with contextlib.suppress(OSError, AttributeError):
        return [round(x, 2) for x in os.getloadavg()]
    return None


def reference_seconds():
    """Seconds for a fixed piece of pure-Python work: how fast the machine is right now.

    On a shared virtual machine the same work can take noticeably longer at one
    moment than at another, idle or not; timing this before each section shows it.
    """
    started = time.perf_counter()
    total = 0
    for number in range(10_000_000):
        total += number
    return round(time.perf_counter() - started, 3)


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def fmt_seconds(value):
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_stat(values, unit="s"):
    """Median (min–max) of ``values``, in seconds or milliseconds."""
    stats = summary(values)
    digits = 1 if unit == "ms" or stats["median"] >= 10 else 2
    text = f"{stats['median']:.{digits}f} {unit}"
    if stats["n"] > 1:
        text += f" ({stats['min']:.{digits}f}–{stats['max']:.{digits}f})"
    return text


def walls(runs):
    return [run["wall"] for run in runs]


def median_wall(runs):
    return statistics.median(walls(runs))


def disk_reads(value):
    """Megabytes read from disk by each script process in ``value`` (results, at any depth)."""
    if isinstance(value, dict):
        if "disk_read_mb" in value:  # one run_phased() result
            return [value["disk_read_mb"]]
        value = list(value.values())
    if isinstance(value, list):
        return [megabytes for item in value for megabytes in disk_reads(item)]
    return []


def phase_medians(runs):
    return {
        phase: statistics.median(run["phases"].get(phase, 0.0) for run in runs) for phase in PHASES
    }


def call_median(runs, name, key="seconds"):
    return statistics.median(run["calls"].get(name, {}).get(key, 0) for run in runs)


def all_calls_median(runs, name):
    return statistics.median(run.get("all_calls", {}).get(name, 0) for run in runs)


# Wrapped calls that are local work, not a request to the tracking store.
NOT_ROUND_TRIPS = (
    "log_model",
    "infer_signature",
    "Figure.savefig",
    "mlflow.data.from_pandas",
    "mlflow.set_tracking_uri",
)


def calls_made(runs):
    """Calls to the tracking store: outermost MLflow calls, without log_model and local work."""
    counts = [
        sum(c["count"] for name, c in run["calls"].items() if name not in NOT_ROUND_TRIPS)
        for run in runs
    ]
    return statistics.median(counts)


def step_entries(data, block, method):
    return [e for rep in data.get(block, []) for e in rep if e["method"] == method]


def step_seconds(data, block, method):
    entries = step_entries(data, block, method)
    return statistics.median(e["seconds_for_all"] for e in entries) if entries else None


def step_rate(data, block, method):
    entries = step_entries(data, block, method)
    return statistics.median(e["points_per_second"] for e in entries) if entries else None


def serving_blocks(side_data, size):
    return side_data.get(size) or side_data.get(str(size)) or []


class Report:
    """BENCHMARKS.md from the measurements: tables, targets, explanations, speed-ups."""

    def __init__(self, results, options):
        self.results, self.options = results, options
        self.lines = []
        self.targets = []  # (target, measured, met)

    def add(self, *lines):
        self.lines.extend(lines)

    def table(self, header, rows):
        self.add("| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            self.add("| " + " | ".join(str(cell) for cell in row) + " |")
        self.add("")

    def render(self):
        self.add(
            "# Benchmarks",
            "",
            "How long the workshop's scripts take, next to the same work written the way",
            "common MLflow tutorials write it (`benchmarks/baselines/`), measured side by side",
            "in one run on one machine, and what each speed-up is so that you can apply it to",
            "your own code. Generated by `benchmarks/run.py`: do not edit by hand. Rerun it",
            "from the repository root on an otherwise idle machine:",
            "",
            "```bash",
            f"python -m benchmarks.run{self.command_flags()}",
            "```",
            "",
        )
        self.machine_section(self.results["machine"], disk_reads(self.results))
        targets_at = len(self.lines)
        for section in SECTIONS:
            if section in self.results:
                getattr(self, f"section_{section}")(self.results[section])
        self.speedups_section()
        self.method_section()
        self.lines[targets_at:targets_at] = self.targets_section()
        return "\n".join(self.lines).rstrip() + "\n"

    def command_flags(self):
        flags = []
        if self.options.setup:
            flags.append("--setup")
        if self.options.quick:
            flags.append("--quick")
        if self.options.repeat != (1 if self.options.quick else 3):
            flags.append(f"--repeat {self.options.repeat}")
        return "".join(f" {flag}" for flag in flags)

    def machine_section(self, machine, reads):
        packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
        start, end = machine["load"], machine.get("load_end")
        self.add(
            "## The machine",
            "",
            f"- {machine['cpu']}, {machine['cores']} cores, {machine['memory']}",
            f"- {machine['os']}, Python {machine['python']}; {packages}",
            f"- Measured {machine['date']}, {self.options.repeat} repetition"
            + ("s" if self.options.repeat > 1 else "")
            + (" (`--quick`: tiny sizes, the figures mean nothing)" if self.options.quick else ""),
            f"- Load average (1, 5, 15 min) before: {start}, after: {end}",
        )
        loads = machine.get("section_loads") or {}
        if loads:
            self.add(
                "- Load average (1 min) as each section started, the benchmark's own process "
                "included: "
                + ", ".join(f"{name} {load[0]}" for name, load in loads.items() if load)
            )
        speeds = machine.get("section_speed") or {}
        if speeds:
            self.add(
                "- A fixed piece of pure-Python work (`reference_seconds` in `benchmarks/run.py`) "
                "took "
                + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in speeds.items())
                + " as each section started"
            )
        if reads and statistics.median(reads) >= DISK_READ_NOTE_MB:
            self.add(
                f"- Each script process read {fmt_stat(reads, 'MB')} from disk: libraries "
                "that the operating system's file cache no longer held. Importing them took "
                "longer than on a machine whose cache keeps them, as a laptop's usually does "
                "from the second run on."
            )
        # The step and serving sections run a server and a client at once, so the
        # next section starts with the load average raised by the benchmark itself.
        names = list(loads)
        busiest = max(
            [
                load[0]
                for index, load in enumerate(loads.values())
                if load and not (index and names[index - 1] in ("steps", "serving"))
            ]
            or [0]
        )
        if start and start[0] > 0.5:
            self.add(
                "",
                f"**The machine was busy when this ran (load average {start[0]} > 0.5): the",
                "figures are inflated and noisy. Rerun the command above on an idle machine.**",
            )
        elif busiest > BUSY_DURING_RUN:
            self.add(
                "",
                f"**Other work started during the run (load average up to {busiest} while the",
                "benchmark itself adds about 1): some figures are inflated. Rerun the command",
                "above on an idle machine.**",
            )
        if speeds and max(speeds.values()) > 1.3 * min(speeds.values()):
            self.add(
                "",
                "**The machine's own speed varied during the run: the same work took "
                f"{max(speeds.values()) / min(speeds.values()):.1f}× as long at its slowest as "
                "at its fastest. Compare figures measured side by side (each table's workshop "
                "and baseline rows, which alternate) rather than across sections.**",
            )
        self.add("")

    def targets_section(self):
        if not self.targets:
            return []
        lines = ["## Targets", "", "| Target | Measured | Met |", "|---|---|---|"]
        for target, measured, met in self.targets:
            lines.append(f"| {target} | {measured} | {'yes' if met else '**no**'} |")
        return [*lines, ""]

    # -- scripts ----------------------------------------------------------------

    def scripts_header(self):
        if getattr(self, "_scripts_header", False):
            return
        self._scripts_header = True
        self.add(
            "## Scripts against tutorial-style baselines",
            "",
            "Wall time of one `python <script>` process from start to exit, median (min–max)",
            "over the repetitions. *cold*: the first run in a new store (MLflow creates its",
            "database tables); *warm*: the next run in the same store, which is what a",
            "participant rerunning a script sees. The phase columns (medians, seconds) add up",
            "to the wall time; see [How the phases are measured](#how-the-phases-are-measured).",
            "*Store calls*: requests to the tracking store, `log_model` not counted.",
            "",
        )

    def script_section(self, key, title, data):
        self.scripts_header()
        self.add(f"### {title}", "")
        if "skipped" in data:
            self.add(f"Skipped: {data['skipped']}.", "")
            return
        runs = data["runs"]
        ratio = median_wall(runs["workshop"]["warm"]) / median_wall(runs["baseline"]["warm"])
        cold_ratio = median_wall(runs["workshop"]["cold"]) / median_wall(runs["baseline"]["cold"])
        met = ratio <= TARGET_RATIO
        self.targets.append(
            (f"`{title}` ≤ {TARGET_RATIO}× its baseline (warm)", f"{ratio:.2f}×", met)
        )
        self.add(
            f"`python {' '.join([title, *data['args']])}`, against `{data.get('baseline', '')}`", ""
        )
        header = ["Run", *(PHASE_TITLES[p] for p in PHASES), "wall time", "store calls"]
        rows = []
        for side in ("workshop", "baseline"):
            for state in ("cold", "warm"):
                side_runs = runs[side][state]
                medians = phase_medians(side_runs)
                rows.append(
                    [
                        f"{side}, {state}",
                        *(f"{medians[p]:.2f}" for p in PHASES),
                        f"**{fmt_stat(walls(side_runs))}**",
                        f"{calls_made(side_runs):.0f}",
                    ]
                )
        self.table(header, rows)
        self.add(
            f"Workshop / baseline: **{ratio:.2f}×** warm, {cold_ratio:.2f}× cold "
            f"(target ≤ {TARGET_RATIO}×).",
            "",
        )
        if not met:
            self.explain_script_miss(runs)
        self.call_breakdown(runs)
        profile = self.results.get("profiles", {}).get(key)
        if profile:
            self.profile_block(profile, f"{title}, warm")

    def explain_script_miss(self, runs):
        workshop = phase_medians(runs["workshop"]["warm"])
        baseline = phase_medians(runs["baseline"]["warm"])
        fixed = workshop["startup"] + workshop["import"] + workshop["exit"]
        logging = workshop["tracking"] + workshop["model"]
        baseline_logging = baseline["tracking"] + baseline["model"]
        bound = (fixed + workshop["training"]) / median_wall(runs["baseline"]["warm"])
        self.add(
            f"Why the target is missed: {fixed:.2f} s of the workshop's "
            f"{median_wall(runs['workshop']['warm']):.2f} s is starting Python, importing",
            f"libraries (MLflow, scikit-learn, pandas and what they load) and exiting, and "
            f"{workshop['training']:.2f} s is training and",
            "evaluation: work both versions do alike. What the logging code controls, tracking",
            f"calls and model logging, takes {logging:.2f} s against the baseline's "
            f"{baseline_logging:.2f} s. Even if logging",
            f"took no time at all, the ratio would be {bound:.2f}×.",
            "",
        )

    def call_breakdown(self, runs):
        names = set()
        for side in ("workshop", "baseline"):
            for run in runs[side]["warm"]:
                names.update(run["calls"])
        rows = []
        for name in sorted(names):
            seconds = [call_median(runs[s]["warm"], name) for s in ("workshop", "baseline")]
            counts = [call_median(runs[s]["warm"], name, "count") for s in ("workshop", "baseline")]
            if max(seconds) >= 0.02:
                rows.append(
                    [
                        f"`{name}`",
                        *(f"{c:.0f} × = {t:.2f} s" for c, t in zip(counts, seconds, strict=True)),
                    ]
                )
        if rows:
            self.add(
                "<details><summary>Time per MLflow call (warm runs, medians, calls that took "
                "≥ 0.02 s; including lazy imports they trigger)</summary>",
                "",
            )
            self.table(["Call", "workshop", "baseline"], rows)
            self.add("</details>", "")

    def profile_block(self, profile, title):
        for side in ("workshop", "baseline"):
            data = profile.get(side)
            if not data:
                continue
            if "error" in data:
                self.add(f"Profiling {title} ({side}) failed: `{data['error'][-300:]}`", "")
                continue
            self.add(
                f"<details><summary>Profile: {title} ({side}); cProfile, "
                f"{data['total']:.1f} s under the profiler</summary>",
                "",
            )
            if data["internals"]:
                self.add("Selected steps, cumulative seconds (including what they call):", "")
                self.table(["Step", "seconds"], [[n, f"{s:.2f}"] for n, s in data["internals"]])
            self.add("Top entries by cumulative time:", "", "```")
            for cumulative, calls, name in data["top"]:
                self.add(f"{cumulative:8.2f} s {calls:>7}  {name}")
            self.add("```", "", "</details>", "")

    def section_demo(self, data):
        self.script_section("demo", "demo.py", data)

    def section_wine(self, data):
        self.script_section("wine", "train_wine_elasticnet.py", data)

    def section_sweep(self, data):
        self.script_section("sweep", "train_iris_sweep.py", data)

    def section_curves(self, data):
        self.script_section("curves", "track_training_curves.py", data)

    # -- step metrics -------------------------------------------------------------

    def section_steps(self, data):
        points, metrics = data["points"], data["metrics"]
        self.add(
            f"## Step metrics: {points:,} points",
            "",
            f"A training curve of {metrics} metric names × {points // metrics:,} steps logged into",
            "one run, then read back to check that every point arrived. Time until the points",
            "are stored (asynchronous logging: until `mlflow.flush_async_logging()` returns).",
            f"Methods that would take minutes stop after {self.options.budget:g} s; their time",
            "for all points is extrapolated from the measured rate (marked ≈). The server is",
            "`mlflow server` on 127.0.0.1 with its defaults (4 workers) and a SQLite store.",
            "The logging process calls `gc.freeze()` after its imports, as the lesson scripts do.",
            "",
        )
        labels = {}
        for block in ("sqlite", "server"):
            for rep in data.get(block, []):
                for entry in rep:
                    labels[entry["method"]] = entry["label"]
        rows = []
        for method, label in labels.items():
            row = [label]
            for block in ("sqlite", "server"):
                entries = step_entries(data, block, method)
                if not entries:
                    row += ["–", "–"]
                    continue
                mark = "≈ " if any(e["extrapolated"] for e in entries) else ""
                row.append(mark + fmt_stat([e["seconds_for_all"] for e in entries]))
                row.append(f"{step_rate(data, block, method):,.0f}")
            rows.append(row)
        self.table(["Method", "SQLite", "points/s", "tracking server", "points/s"], rows)
        if data.get("lesson_batch"):
            self.add(
                f"track_training_curves.py collects its step metrics as `Metric` objects and sends "
                f"them with `MlflowClient.log_batch` when {data['lesson_batch']:,} are waiting, "
                f"{data.get('lesson_seconds')} s after its last call, and at the end; points "
                "that come as quickly as here "
                f"go out {data['lesson_batch']:,} per call.",
                "",
            )
            missed = []
            for block, where in (("sqlite", "SQLite"), ("server", "a local tracking server")):
                seconds = step_seconds(data, block, "batch_lesson")
                if seconds is None:
                    continue
                met = seconds < TARGET_STEP_SECONDS
                self.targets.append(
                    (
                        f"{points:,} step points < {TARGET_STEP_SECONDS:g} s the way the "
                        f"training-curve lesson logs them, {where}",
                        f"{seconds:.2f} s",
                        met,
                    )
                )
                if not met:
                    calls = math.ceil(points / data["lesson_batch"])
                    missed.append(
                        f"on {where} {calls} calls took {seconds:.2f} s, "
                        f"{seconds / calls * 1000:.0f} ms per call"
                    )
            if missed:
                fewest = data["lesson_batch"] >= 1000
                self.add(
                    "Why the target is missed: "
                    + "; ".join(missed)
                    + ". "
                    + (
                        "The lesson already makes as few calls as MLflow allows (1,000 metrics "
                        "per request); what remains is MLflow's work for each point, in its "
                        "SQLAlchemy store (profile below). With a tracking server the same work "
                        "happens in the server, plus encoding, sending and decoding JSON."
                        if fewest
                        else "Larger batches (up to 1,000 metrics per request) make fewer calls."
                    ),
                    "",
                )
        if data.get("batch_profile"):
            self.add(
                f"Where `log_batch` spends its time on SQLite ({points:,} points, 1,000 per call,",
                "cProfile, cumulative seconds): the work is per point, in MLflow's SQLAlchemy",
                "store, not per call.",
                "",
            )
            self.table(["Step", "seconds"], [[n, f"{t:.2f}"] for n, t in data["batch_profile"]])
        if data.get("server_batch_profile"):
            self.add(
                "The same against the tracking server, seen from the client (cProfile,",
                "cumulative seconds). Most of the time is spent waiting for the server's answer:",
                "the server does the SQLAlchemy store's work above, after decoding the JSON.",
                "",
            )
            self.table(
                ["Step", "seconds"], [[n, f"{t:.2f}"] for n, t in data["server_batch_profile"]]
            )
        if "server_startup" in data:
            self.add(f"The tracking server took {data['server_startup']:.1f} s to start.", "")

    # -- compare ------------------------------------------------------------------

    def section_compare(self, data):
        self.add(
            "## compare_runs.py over 1,000 runs"
            if data.get("n_runs") == 1000
            else "## compare_runs.py over many runs",
            "",
        )
        if "skipped" in data:
            self.add(f"Skipped: {data['skipped']}.", "")
            return
        runs, n = data["runs"], data["n_runs"]
        self.add(
            f"One experiment holding {n:,} finished runs with params, metrics and tags like",
            f"train_wine_elasticnet.py's (made in {data['fill_seconds']:.0f} s by",
            "`benchmarks/fill_store.py`); whole processes, warm store.",
            "",
        )
        titles = {
            "workshop": f"`compare_runs.py {' '.join(data['args'])}`",
            "baseline": "baseline: `mlflow.search_runs(...)` to a DataFrame, same filter, order",
            "workshop_no_freeze": "the same `compare_runs.py` command with `gc.freeze()` "
            "turned off",
            "workshop_default": "`compare_runs.py` with its defaults (first 100 runs)",
        }
        rows = []
        for name, title in titles.items():
            if name not in runs:
                continue
            side_runs = runs[name]
            medians = phase_medians(side_runs)
            rows.append(
                [
                    title.replace("|", "\\|"),
                    f"**{fmt_stat(walls(side_runs))}**",
                    f"{medians['startup'] + medians['import'] + medians['exit']:.2f} s",
                    f"{all_calls_median(side_runs, 'MlflowClient.search_runs'):.0f}",
                    f"{medians['tracking']:.2f} s",
                ]
            )
        self.table(
            ["Command", "wall time", "start, import, exit", "`search_runs` requests", "tracking"],
            rows,
        )
        seconds = median_wall(runs["workshop"])
        ratio = seconds / median_wall(runs["baseline"])
        self.targets.append(
            (
                f"compare_runs.py over {n:,} runs (filter, order, all pages) "
                f"< {TARGET_COMPARE_SECONDS:g} s",
                f"{seconds:.2f} s",
                seconds < TARGET_COMPARE_SECONDS,
            )
        )
        self.targets.append(
            (
                f"compare_runs.py ≤ {TARGET_RATIO}× its baseline",
                f"{ratio:.2f}×",
                ratio <= TARGET_RATIO,
            )
        )
        if seconds >= TARGET_COMPARE_SECONDS or ratio > TARGET_RATIO:
            medians = phase_medians(runs["workshop"])
            floor = statistics.median(data["floor"])
            requests = all_calls_median(runs["workshop"], "MlflowClient.search_runs")
            self.add(
                "Why the target is missed: the least any script that reads this store takes",
                "(start Python, import MLflow, open the SQLite store, one request, exit; the",
                f"code is `STORE_FLOOR_CODE` in `benchmarks/run.py`) is {fmt_stat(data['floor'])}",
                f"here, {floor / seconds:.0%} of compare_runs.py's {seconds:.2f} s. Importing "
                "MLflow (which imports",
                "pandas, SQLAlchemy, FastAPI and its GenAI modules) is most of it; see the",
                f"profile below. The search itself is {requests:.0f} request"
                f"{'s' * (requests != 1)}, {medians['tracking']:.2f} s in MLflow calls.",
                "",
            )
        profile = self.results.get("profiles", {}).get("compare")
        if profile:
            self.profile_block(profile, "compare_runs.py")

    # -- serving --------------------------------------------------------------------

    def section_serving(self, data):
        self.add("## Model serving", "")
        if "skipped" in data:
            self.add(f"Skipped: {data['skipped']}.", "")
            return
        self.add(
            "The iris champion of the sweep, served on 127.0.0.1 by `python serve_model.py`",
            "(workshop) and by `mlflow models serve --env-manager local` (the baseline sweep's",
            "champion). One client sends requests one after another on a keep-alive",
            f"connection: 20 warm-up requests, then {self.options.requests} per repetition;",
            "latency is from sending the request to having read the response.",
            "",
        )
        rows = []
        for side in ("workshop", "baseline"):
            if side not in data:
                continue
            for size in (1, 100):
                blocks = serving_blocks(data[side], size)
                rows.append(
                    [
                        f"{side} (ready after {data[side]['startup']:.1f} s)" if size == 1 else "",
                        f"`/invocations`, {size} row{'s' * (size > 1)}",
                        fmt_stat([b["p50"] for b in blocks], "ms"),
                        fmt_stat([b["p99"] for b in blocks], "ms"),
                        f"{statistics.median(b['requests_per_second'] for b in blocks):,.0f}",
                    ]
                )
            if "ping" in data[side]:
                ping = data[side]["ping"]
                rows.append(
                    [
                        "",
                        "`GET /ping` (no model)",
                        f"{ping['p50']:.1f} ms",
                        f"{ping['p99']:.1f} ms",
                        f"{ping['requests_per_second']:,.0f}",
                    ]
                )
        self.table(["Server", "Request", "p50", "p99", "requests/s"], rows)
        in_process = {s: data[s].get("in_process") for s in ("workshop", "baseline") if s in data}
        rows = []
        for side, timings in in_process.items():
            if not timings:
                continue
            for size in (1, 100):
                row = [side, f"{size} row{'s' * (size > 1)}"]
                row.append(f"{timings[f'pyfunc_{size}']:.1f} ms")
                row.append(f"{timings[f'sklearn_{size}']:.1f} ms")
                one = timings.get(f"sklearn_one_thread_{size}")
                row.append(f"{one:.1f} ms" if one is not None else "–")
                rows.append(row)
        if rows:
            threads = "; ".join(
                f"the {side}'s forest has `n_jobs={timings['n_jobs']}`"
                for side, timings in in_process.items()
                if timings
            )
            self.add(
                "Where a request's time goes: the same models' `predict` timed inside one Python",
                f"process (medians). {threads[0].upper()}{threads[1:]}. With `n_jobs=-1`,",
                "scikit-learn predicts with a pool of threads, one per core, even for one row;",
                "`None` (the default) means one thread.",
                "",
            )
            self.table(
                ["Model", "Input", "pyfunc `predict`", "forest `predict`", "forest, `n_jobs=1`"],
                rows,
            )
        blocks = serving_blocks(data["workshop"], 1)
        p50 = statistics.median(b["p50"] for b in blocks)
        met = p50 < TARGET_SERVING_P50_MS
        self.targets.append(
            (f"Serving p50 < {TARGET_SERVING_P50_MS:g} ms for one row", f"{p50:.1f} ms", met)
        )
        timings = in_process.get("workshop")
        if timings:
            ping = data["workshop"].get("ping", {}).get("p50", 0.0)
            forest, trees = timings["sklearn_1"], timings.get("n_estimators")
            server = p50 - timings["pyfunc_1"]
            text = (
                f"Why the target is {'met' if met else 'missed'}: of the {p50:.1f} ms, MLflow's "
                f"pyfunc `predict` takes {timings['pyfunc_1']:.1f} ms in-process, {forest:.1f} ms "
                "of it the forest's own `predict`"
                + (f" ({trees} trees, {forest / trees * 1000:.0f} µs each)" if trees else "")
                + f"; the other {server:.1f} ms are HTTP and the scoring server turning the "
                "JSON request into a DataFrame and the predictions back into JSON (a `GET /ping` "
                f"round trip takes {ping:.1f} ms)."
            )
            largest = timings.get("largest")
            if largest and trees and largest["n_estimators"] != trees:
                text += (
                    " The champion rule takes the fewest trees among the most accurate forests; "
                    f"the sweep's largest forest ({largest['n_estimators']} trees, version "
                    f"{largest['version']}) takes {largest['sklearn_1']:.1f} ms for the same row."
                )
            if not met and trees and server < TARGET_SERVING_P50_MS:
                text += (
                    f" A forest that answers within {TARGET_SERVING_P50_MS:g} ms here would have "
                    f"at most about {(TARGET_SERVING_P50_MS - server) / (forest / trees):.0f}"
                    " trees (an estimate from these figures)."
                )
            elif not met:
                text += (
                    f" The server's part alone takes {TARGET_SERVING_P50_MS:g} ms or more here, "
                    "whatever the model."
                )
            self.add(text, "")

    # -- set-up -------------------------------------------------------------------

    def section_setup(self, data):
        self.add("## Set-up: from an empty virtual environment to a finished demo.py", "")
        if "skipped" in data:
            self.add(f"Skipped: {data['skipped']}.", "")
            return
        rows = [[name, fmt_seconds(seconds)] for name, seconds in data["steps"].items()]
        rows.append(["**total**", f"**{fmt_seconds(sum(data['steps'].values()))}**"])
        self.table(["Step", "time"], rows)
        kinds = pip_source_kinds(data.get("pip_sources") or [])
        if LOCAL_PACKAGES in kinds:
            where = (
                f"pip's configuration on this machine points it at {' and '.join(kinds)}, so it "
                "may not have downloaded anything; over the network to PyPI expect longer."
            )
        elif kinds:
            where = f"pip's configuration on this machine points it at {kinds[0]}."
        else:
            where = (
                "pip downloaded from its default index (PyPI) unless its cache already held "
                f"the wheels ({data['pip_cache_mb']:.0f} MB in the cache afterwards)."
            )
        self.add(
            f"Measured once; pip installed {data['packages']} packages. {where} The first",
            "`python demo.py` in a new environment also compiles every module it imports to",
            "bytecode (`__pycache__`), which later runs reuse.",
            "",
        )

    # -- what each speed-up is ------------------------------------------------------

    def speedups_section(self):
        results = self.results
        items = []
        demo = results.get("demo", {}).get("runs")
        if demo:
            workshop, baseline = demo["workshop"]["warm"], demo["baseline"]["warm"]
            items.append(
                "**Name the model's requirements.** `log_model(..., pip_requirements=[...])` with "
                "exact versions (`importlib.metadata.version`). Without them MLflow works them out "
                "by loading the model in a new Python process and watching what it imports: "
                f"demo.py's `log_model` took {call_median(workshop, 'log_model'):.2f} s, the "
                f"baseline's {call_median(baseline, 'log_model'):.2f} s (warm medians). Both "
                "still validate the input example by loading the model back and predicting."
            )
            per_value = [
                (call_median(baseline, name), call_median(baseline, name, "count"))
                for name in ("mlflow.log_param", "mlflow.log_metric", "mlflow.set_tag")
            ]
            seconds, count = sum(s for s, _ in per_value), sum(c for _, c in per_value)
            batched = sum(
                call_median(workshop, name)
                for name in ("mlflow.log_params", "mlflow.log_metrics", "mlflow.set_tags")
            )
            if count:
                items.append(
                    "**One call per kind, with a dict.** `log_params`, `log_metrics` and "
                    "`set_tags` send a whole dict in one request (one database transaction, or "
                    f"one HTTP request to a server). The baseline's {count:.0f} single-value calls "
                    f"took {seconds:.2f} s ({seconds / count * 1000:.0f} ms each); demo.py's three "
                    f"dict calls {batched:.2f} s."
                )
            cold = median_wall(demo["workshop"]["cold"]) - median_wall(workshop)
            items.append(
                "**Keep one store.** The first run in a new SQLite store creates MLflow's tables "
                f"(about {cold:.1f} s more for demo.py here); the workshop keeps one "
                "`mlflow.db` at "
                "the repository root, wherever a script is started from, so only the very first "
                "run pays."
            )
        steps = results.get("steps")
        if steps and steps.get("sqlite"):
            rates = {m: step_rate(steps, "sqlite", m) for m in METHOD_ORDER}
            server = {m: step_rate(steps, "server", m) for m in METHOD_ORDER}
            if rates["per_value"] and rates["batch_1000"]:
                text = (
                    "**Send step metrics in batches.** Collect `Metric(key, value, timestamp, "
                    "step)` objects and send them with `MlflowClient.log_batch` (at most 1,000 "
                    "per call): on SQLite "
                    f"{rates['batch_1000']:,.0f} points/s against {rates['per_value']:,.0f} for "
                    "one `log_metric` call per value"
                )
                if server["per_value"] and server["batch_1000"]:
                    text += (
                        f", on a tracking server {server['batch_1000']:,.0f} against "
                        f"{server['per_value']:,.0f}"
                    )
                items.append(
                    text + ". A dict per step (`log_metrics`) helps only as much as "
                    "there are metrics per step."
                )
            if rates["async"] and rates["async_buffered"]:
                items.append(
                    "**Asynchronous logging needs buffering to pay off.** "
                    "`log_metric(..., synchronous=False)` (or `MLFLOW_ENABLE_ASYNC_LOGGING=true`) "
                    "returns at once, but by default every queued value is still written in its "
                    f"own request ({rates['async']:,.0f} points/s until flushed, SQLite). With "
                    "`MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1` the queue is merged into batches "
                    f"once a second: {rates['async_buffered']:,.0f} points/s. Explicit "
                    "`log_batch` is simpler to reason about and faster still."
                )
        exits = {
            side: statistics.median(
                run["phases"]["exit"]
                for key in ("demo", "wine", "sweep", "curves")
                for run in results.get(key, {}).get("runs", {}).get(side, {}).get("warm", [])
            )
            for side in ("workshop", "baseline")
            if any(results.get(key, {}).get("runs") for key in ("demo", "wine", "sweep", "curves"))
        }
        freezes = "gc.freeze" in (REPO_ROOT / "workshop_store.py").read_text()
        searches = results.get("compare", {}).get("runs", {})
        if exits and freezes and exits["workshop"] < exits["baseline"] / 2:
            text = (
                "**Keep the garbage collector off what lives until the end.** Python's full "
                "garbage collections walk every object alive; after importing MLflow, "
                "scikit-learn and pandas that is hundreds of thousands of objects, which live "
                "until the script ends anyway. `gc.freeze()` takes the objects alive at that "
                "moment out of the collector's sight, and the workshop's `workshop_store` calls "
                "it twice. "
            )
            if "workshop_no_freeze" in searches:
                frozen, thawed = (
                    sum(phase_medians(searches[name])[phase] for phase in IN_PROCESS_PHASES)
                    for name in ("workshop", "workshop_no_freeze")
                )
                text += (
                    "In `connect()`, which each script's `main` calls after the imports and "
                    "before its MLflow work: compare_runs.py over "
                    f"{results['compare']['n_runs']:,} runs spent "
                    f"{frozen:.2f} s between start-up and exit, {thawed:.2f} s with `gc.freeze()` "
                    "turned off. "
                )
            items.append(
                text + "At exit (`atexit.register(gc.freeze)`), which skips Python's final "
                "collection, the part of the clean-up that walks those objects: "
                f"{exits['workshop']:.2f} s to exit per run, against {exits['baseline']:.2f} s "
                "for the baselines. Nothing is lost: MLflow has written everything before the "
                "script ends."
            )
        elif exits:
            items.append(
                "**Exit is not free.** After `main()` returns, Python tears down every module "
                "MLflow, scikit-learn and pandas loaded (about two thousand): "
                f"{exits['workshop']:.2f} s per run here (median of the warm workshop runs)."
            )
        compare = results.get("compare", {}).get("runs")
        if compare:
            items.append(
                "**Fetch search results in few requests.** Each `search_runs` page is one "
                "request; the workshop's `compare_runs.py` made "
                f"{all_calls_median(compare['workshop'], 'MlflowClient.search_runs'):.0f} for "
                f"{results['compare']['n_runs']:,} runs. `max_results` up to 1,000 per page "
                "(SQLite "
                "allows more) keeps that small, and `filter_string`/`order_by` let the store "
                "select and sort instead of Python."
            )
        serving = results.get("serving", {}).get("baseline", {}).get("in_process")
        if serving and serving.get("sklearn_one_thread_1") is not None:
            items.append(
                "**Keep small forests on one thread.** A forest trained with `n_jobs=-1` "
                "keeps that setting in the logged model and predicts with a thread pool: "
                f"{serving['sklearn_1']:.1f} ms for one row here (the baseline's model), "
                f"{serving['sklearn_one_thread_1']:.1f} ms with `n_jobs=1`. On a few hundred "
                "rows the threads do not speed up training either, so the workshop keeps "
                "scikit-learn's default of one thread. For a large training set, "
                "`model.set_params(n_jobs=1)` after `fit` and before `log_model` keeps "
                "training parallel and serving quick."
            )
        champion = results.get("serving", {}).get("workshop", {}).get("in_process") or {}
        largest = champion.get("largest")
        if largest and champion.get("n_estimators") not in (None, largest["n_estimators"]):
            items.append(
                "**Serve the smallest model that is as good.** A forest's prediction time grows "
                "with its number of trees: one row took "
                f"{champion['sklearn_1']:.1f} ms with the champion's {champion['n_estimators']} "
                f"trees and {largest['sklearn_1']:.1f} ms with the sweep's "
                f"{largest['n_estimators']}. Sweep small settings too, and break accuracy ties "
                "in favour of the smaller model, as train_iris_sweep.py's champion rule does."
            )
        if not items:
            return
        self.add("## What each speed-up is", "")
        for number, item in enumerate(items, start=1):
            self.add(f"{number}. {item}")
        self.add("")

    def method_section(self):
        self.add(
            "## How the phases are measured",
            "",
            "`benchmarks/phases.py` imports the script in a fresh process and calls its",
            "`main()`. It wraps MLflow's logging entry points (`mlflow.log_*`, `set_tag(s)`,",
            "`start_run`/`end_run`, `set_experiment`, `mlflow.data.from_pandas`, every",
            "`MlflowClient` method, `Figure.savefig`) as *tracking calls*, `Model.log` (behind",
            "every `log_model`) and `infer_signature` as *model logging*, and every import",
            "that loads a new module as *import*, including the modules MLflow loads lazily",
            "on first use (the SQLAlchemy store, skops, ...). Only the outermost wrapped call",
            "counts and time is exclusive, so each second lands in exactly one phase; the",
            "rest of `main()` is *training & evaluation* (data, fit, predict, scores, drawing",
            "the figures). *Python start* runs from spawning the process to calling the",
            "script, *exit* from `main()` returning to the process ending (MLflow's and",
            "Python's clean-up). The wrappers cost microseconds per call. Every measured",
            "script runs from a copy committed to a new git repository, as in a clone of",
            "the workshop, because MLflow records the script's git commit. MLflow's",
            "telemetry is switched off (`MLFLOW_DISABLE_TELEMETRY=true`) so that nothing",
            "leaves 127.0.0.1. Profiles come from separate warm runs under `python -m",
            "cProfile`, which slows Python code down: read them for proportions.",
            "",
        )


METHOD_ORDER = ("per_value", "per_step", "batch_1000", "batch_lesson", "async", "async_buffered")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions (default 3, --quick 1)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke test, not figures"
    )
    parser.add_argument(
        "--setup", action="store_true", help="also time venv + pip install + demo.py"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated sections to run (default: all but setup): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="the wine CSV (default %(default)s)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="report path"
    )
    parser.add_argument("--json", type=Path, help="also write the raw measurements here")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="measure nothing: write the report from measurements saved with --json "
        "(pass the flags of that run too)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile runs")
    options = parser.parse_args(argv)
    if options.repeat is None:
        options.repeat = 1 if options.quick else 3
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    chosen = options.only.split(",") if options.only else [s for s in SECTIONS if s != "setup"]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if options.setup and "setup" not in chosen:
        chosen.append("setup")
    options.sections = [s for s in SECTIONS if s in chosen]  # the sweep before serving
    options.points = 400 if options.quick else 10_000
    options.budget = 0.5 if options.quick else 5.0
    options.runs = 30 if options.quick else 1000
    options.requests = 20 if options.quick else 500
    return options


def main(argv=None):
    options = parse_args(argv)
    if options.render:
        options.output.write_text(Report(json.loads(options.render.read_text()), options).render())
        progress(f"wrote {options.output} from {options.render}")
        return None
    results = {"machine": machine_info()}
    progress(f"load average {results['machine']['load']}; results go to {options.output}")
    workspace = Workspace(keep=options.keep)
    kept = {}  # (case, side) -> (folder, script path, args) of the last run, for profiles
    sections = {case.key: case for case in script_cases(options)}
    failed = []
    try:
        for section in options.sections:
            results["machine"].setdefault("section_loads", {})[section] = load_average()
            results["machine"].setdefault("section_speed", {})[section] = reference_seconds()
            try:
                if section in sections:
                    results[section] = bench_script(sections[section], options, workspace, kept)
                elif section == "steps":
                    results[section] = bench_steps(options, workspace)
                elif section == "compare":
                    results[section] = bench_compare(options, workspace)
                elif section == "serving":
                    results[section] = bench_serving(options, workspace, kept)
                elif section == "setup":
                    results[section] = bench_setup(workspace)
            except (BenchmarkError, subprocess.SubprocessError, OSError) as error:
                # One broken section must not throw away the others' measurements.
                progress(f"{section} FAILED: {error}")
                results[section] = {"skipped": f"FAILED: {str(error).splitlines()[0]}"}
                failed.append(section)
        if not options.no_profile:
            results["profiles"] = profiles(results, options, kept)
    finally:
        workspace.close()
    results["machine"]["load_end"] = load_average()
    report = Report(results, options).render()
    options.output.write_text(report)
    if options.json:
        options.json.write_text(json.dumps(results, indent=1, default=str))
    progress(f"wrote {options.output}")
    if failed:
        raise SystemExit(f"These sections failed: {', '.join(failed)} (see above).")
    return results


def profiles(results, options, kept):
    """cProfile warm runs: demo.py always, and every script whose target was missed."""
    found = {}
    for key in ("demo", "wine", "sweep", "curves"):
        data = results.get(key)
        if not data or "runs" not in data:
            continue
        runs = data["runs"]
        ratio = statistics.median(walls(runs["workshop"]["warm"])) / statistics.median(
            walls(runs["baseline"]["warm"])
        )
        if key != "demo" and ratio <= TARGET_RATIO:
            continue
        found[key] = {}
        for side in ("workshop", "baseline"):
            if (key, side) in kept:
                folder, script, args = kept[(key, side)]
                progress(f"profiling {Path(script).name}")
                found[key][side] = profile_script(folder, script, args)
    compare = results.get("compare")
    if compare and "runs" in compare:
        seconds = statistics.median(walls(compare["runs"]["workshop"]))
        if seconds >= TARGET_COMPARE_SECONDS:
            progress("profiling compare_runs.py")
            folder = compare["folder"]
            found["compare"] = {
                "workshop": profile_script(folder, folder / "compare_runs.py", compare["args"])
            }
    return found


if __name__ == "__main__":
    main()
