"""Time the workshop's scripts and write the tables of BENCHMARKS.md.

    python -m benchmarks.run           # the full run, about 10 minutes on two cores
    python -m benchmarks.run --quick   # tiny sizes, once each: prints the targets only

Every process runs in a new temporary folder with its own SQLite store
(MLFLOW_TRACKING_URI), never the repository's mlflow.db. Whole-process wall
times come from hyperfine (`apt-get install hyperfine`, `brew install
hyperfine`), step logging from step_metrics.py, serving latency from a
keep-alive client below. Servers listen on 127.0.0.1 only and are stopped even
when something fails. Linux or macOS: servers run in process groups.
"""

import argparse
import contextlib
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from subprocess import DEVNULL
from types import SimpleNamespace

from benchmarks import report

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
WINE_CSV = REPO / "data" / "winequality-red.csv"
PYTHON = sys.executable
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_ROW = json.dumps(
    {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
)


# How much to measure: (a full run, a --quick run).
SIZES = {
    "runs": (3, 1),  # timed runs of each warm command
    "cold_runs": (1, 0),  # timed runs of each lesson in a new store
    "demo": ((), ("--n-estimators", "10")),  # flags for demo.py and its baseline
    "sweep": ((), ("--grid", "10:2")),  # ... for train_iris_sweep.py and its baseline
    "curves": ((), ("--epochs", "3")),  # ... for track_training_curves.py and its baseline
    "fill_runs": (1000, 50),  # runs in the store that compare_runs.py searches
    "points": (10_000, 400),  # step-metric points per measurement
    "budget": (3.0, 0.2),  # seconds for the slow way of logging them
    "requests": (500, 30),  # timed requests to each model server
    "serve_all": (True, False),  # also the baseline's champion and a forest of 200 trees
}


# %%
# Processes: each with its own store, nothing beyond 127.0.0.1
def environment(folder, tracking_uri=None):
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri or f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def command(*args):
    return shlex.join([PYTHON, *map(str, args)])


def shown(full_command):
    """A command as typed at the repository root, for the report."""
    return full_command.replace(PYTHON, "python").replace(f"{REPO}{os.sep}", "")


def run_in(folder, *args, tracking_uri=None):
    env = environment(folder, tracking_uri)
    subprocess.run([PYTHON, *map(str, args)], cwd=folder, env=env, check=True, stdout=DEVNULL)


def hyperfine(folder, commands, runs, prepare=None):
    """hyperfine's results for ``commands``, each run ``runs`` times in ``folder``."""
    export = folder / "hyperfine.json"
    argv = ["hyperfine", "--shell=none", "--style=basic", f"--runs={runs}"]
    argv += [f"--export-json={export}", *(["--prepare", prepare] if prepare else [])]
    for full_command in commands:
        argv += ["--command-name", shown(full_command)]
    try:
        subprocess.run([*argv, *commands], cwd=folder, env=environment(folder), check=True)
    except subprocess.CalledProcessError:  # hyperfine hides why: run each command once more
        for argv in map(shlex.split, commands):
            done = subprocess.run(argv, cwd=folder, env=environment(folder), capture_output=True)
            print(shown(shlex.join(argv)), done.stderr.decode()[-3000:], file=sys.stderr)
        raise
    return json.loads(export.read_text())["results"]


@contextlib.contextmanager
def server(argv, folder, port, ready_path, tracking_uri=None):
    """Run a server until the block ends, even on failure; yields its seconds to answer."""
    started = time.perf_counter()
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(
            argv,
            cwd=folder,
            env=environment(folder, tracking_uri),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: its workers stop with it
        )
        try:
            wait_until_ready(process, port, ready_path, folder / "server.log")
            yield time.perf_counter() - started
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_ready(process, port, path, log, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{shlex.join(process.args)} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{shlex.join(process.args)} did not answer within {timeout} s")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# %%
# The measurements, one function per section of BENCHMARKS.md
def time_lessons(work, sizes):
    """Each lesson cold (a new store) and warm (its store again), and its baseline warm too."""
    wine = ("--data", WINE_CSV)
    lessons = [
        ("demo.py", "baseline_demo.py", sizes.demo),
        ("train_wine_elasticnet.py", "baseline_wine_elasticnet.py", wine),
        ("train_iris_sweep.py", "baseline_iris_sweep.py", sizes.sweep),
        ("track_training_curves.py", "baseline_training_curves.py", sizes.curves),
    ]
    rows = []
    for lesson, baseline, flags in lessons:
        folder, baseline_folder = work / lesson, work / baseline  # time_serving reuses the sweeps'
        folder.mkdir(), baseline_folder.mkdir()
        lesson_command = command(REPO / lesson, *flags)
        cold = None  # --quick runs each lesson once only, in a new store
        if sizes.cold_runs:
            prepare = "rm -rf mlflow.db mlruns"  # a new store before each run
            (cold,) = hyperfine(folder, [lesson_command], sizes.cold_runs, prepare=prepare)
        (warm,) = hyperfine(folder, [lesson_command], sizes.runs)  # in the store the last made
        # The baseline starts from a copy of that store: tables made, experiment there.
        shutil.copyfile(folder / "mlflow.db", baseline_folder / "mlflow.db")
        baseline_command = command(BENCHMARKS / "baselines" / baseline, *flags)
        (base,) = hyperfine(baseline_folder, [baseline_command], sizes.runs)
        rows.append({"lesson": lesson, "cold": cold, "warm": warm, "baseline": base})
    return rows


def time_step_metrics(work, sizes):
    """step_metrics.py against a SQLite store, then against `mlflow server` on 127.0.0.1."""
    folder = work / "step_metrics"
    folder.mkdir()
    script = [BENCHMARKS / "step_metrics.py", f"--points={sizes.points}", f"--repeats={sizes.runs}"]
    script.append(f"--budget={sizes.budget}")
    run_in(folder, *script, "--result=sqlite.json")
    port = free_port()
    # One worker: the client sends one request at a time, and it starts sooner than four.
    mlflow_server = [PYTHON, "-m", "mlflow", "server", "--host=127.0.0.1", f"--port={port}"]
    mlflow_server += ["--workers=1", f"--backend-store-uri=sqlite:///{folder / 'server.db'}"]
    mlflow_server += [f"--default-artifact-root={folder / 'server-artifacts'}"]
    with server(mlflow_server, folder, port, "/health") as startup:
        run_in(folder, *script, "--result=server.json", tracking_uri=f"http://127.0.0.1:{port}")
    return {
        "SQLite": json.loads((folder / "sqlite.json").read_text()),
        "tracking server": json.loads((folder / "server.json").read_text()),
        "server_startup": startup,
    }


def time_compare_runs(work, sizes):
    """compare_runs.py over an experiment of ``fill_runs`` runs, and the floor of such scripts."""
    folder = work / "compare_runs"
    folder.mkdir()
    run_in(folder, BENCHMARKS / "fill_store.py", f"--runs={sizes.fill_runs}")
    compare = command(REPO / "compare_runs.py", "--experiment", "wine-quality-elasticnet")
    compare += f" --filter 'metrics.rmse < 1' --max-results {sizes.fill_runs}"
    floor = command("-c", "import mlflow; mlflow.MlflowClient().search_experiments()")
    compare_timing, floor_timing = hyperfine(folder, [compare, floor], sizes.runs)
    return {"runs": sizes.fill_runs, "compare": compare_timing, "floor": floor_timing}


def time_serving(work, sizes):
    """serve_model.py serving a sweep's champion; requests one after another on one connection."""
    stores = [("the sweep's champion", work / "train_iris_sweep.py")]
    if sizes.serve_all:
        stores.append(
            ("the baseline sweep's champion (`n_jobs=-1`)", work / "baseline_iris_sweep.py")
        )
        large = work / "large_forest"
        large.mkdir()
        run_in(large, REPO / "train_iris_sweep.py", "--grid", "200:10")
        stores.append(("a forest of 200 trees (`train_iris_sweep.py --grid 200:10`)", large))
    results = []
    for model, folder in stores:
        port = free_port()
        serve_model = [PYTHON, REPO / "serve_model.py", f"--port={port}"]
        with server(serve_model, folder, port, "/ping") as up:
            one_row = latencies(port, "POST", "/invocations", IRIS_ROW, sizes.requests)
            ping = latencies(port, "GET", "/ping", None, sizes.requests)
        results.append({"model": model, "startup": up, "one_row": one_row, "ping": ping})
    return results


def latencies(port, method, path, body, count, warmup=20):
    """Milliseconds from sending a request to having read the answer: {p50, p99, requests}."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # keeps alive
    times = []
    for _ in range(warmup + count):
        started = time.perf_counter()
        connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"{method} {path} answered {response.status}: {answer[:500]}")
    connection.close()
    p50, p99 = statistics.median(times[warmup:]), statistics.quantiles(times[warmup:], n=100)[98]
    return {"p50": p50, "p99": p99, "requests": count}


def machine(quick):
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):  # Linux names the model here
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":")[1].strip() for line in lines if line.startswith("model name"))
    packages = ("mlflow", "scikit-learn", "pandas", "sqlalchemy", "skops")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": [round(load, 2) for load in os.getloadavg()],
        "quick": quick,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--report", help="rewrite this file's tables (default: BENCHMARKS.md)")
    parser.add_argument("--results", help="also write the measurements to this JSON file")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine, or brew install.")
    if not WINE_CSV.is_file():
        raise SystemExit(f"The wine data is missing at {WINE_CSV}.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("Stopped by SIGTERM."))  # servers too
    sizes = SimpleNamespace(**{name: pair[int(args.quick)] for name, pair in SIZES.items()})
    started = time.perf_counter()
    results = {"machine": machine(args.quick)}
    work = Path(tempfile.mkdtemp(prefix="workshop-benchmarks-"))
    try:
        results["scripts"] = time_lessons(work, sizes)
        results["step_metrics"] = time_step_metrics(work, sizes)
        results["compare_runs"] = time_compare_runs(work, sizes)
        results["serving"] = time_serving(work, sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    results["machine"] |= {
        "load_after": [round(load, 2) for load in os.getloadavg()],
        "minutes": minutes,
    }
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=2))
    print(report.targets(results), f"\n\nMeasured in {minutes:.1f} minutes.")
    path = args.report or (None if args.quick else REPO / "BENCHMARKS.md")  # not quick figures
    if path:
        Path(path).write_text(report.render(Path(path).read_text(), results))
        print(f"Wrote the tables of {path}.")


if __name__ == "__main__":
    main()
