"""Time the workshop's scripts and write the tables of BENCHMARKS.md.

    python -m benchmarks.run           # the full run, about 15 minutes on two cores
    python -m benchmarks.run --quick   # tiny sizes, once each: prints the targets only

Each process runs in a new temporary folder with its own SQLite store (Linux or macOS):
hyperfine times whole processes, step_metrics.py step logging, latencies() model servers.
"""

import argparse
import ast
import contextlib
import http.client
import importlib.util
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
from types import SimpleNamespace

from benchmarks import report

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
PYTHON = sys.executable
PACKAGES = ("mlflow", "scikit-learn", "pandas", "sqlalchemy", "skops")  # their versions reported
WINE = ("--data", REPO / "data" / "winequality-red.csv")  # the baseline has no default
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
ONE_ROW = json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})

# The lessons timed, in this order: (lesson, its baseline in baselines/, the earlier lesson
# whose folder and store it runs in). A lesson in a folder of its own is also timed cold.
LESSONS = [
    ("demo.py", "baseline_demo.py", None),
    ("load_model.py", None, "demo.py"),  # loads the newest demo.py model
    ("train_wine_elasticnet.py", "baseline_wine_elasticnet.py", None),
    ("train_iris_sweep.py", "baseline_iris_sweep.py", None),
    ("track_training_curves.py", "baseline_training_curves.py", None),
    ("autolog_grid_search.py", None, None),
    ("check_exercises.py", None, "demo.py"),  # reads what demo.py and load_model.py left
]
# Timed when Java and pyspark are installed; score_on_spark.py needs the sweep's champion.
SPARK_LESSONS = [
    ("spark/train_spark_forest.py", None, "train_iris_sweep.py"),
    ("spark/score_on_spark.py", None, "train_iris_sweep.py"),
]
# How much to measure: (a full run, a --quick run).
FLAGS = {  # for a lesson and its baseline; a lesson not named here runs with its defaults
    "demo.py": ((), ("--n-estimators", "10")),
    "train_wine_elasticnet.py": (WINE, WINE),
    "train_iris_sweep.py": ((), ("--grid", "10:2")),
    "track_training_curves.py": ((), ("--epochs", "3")),
    "spark/train_spark_forest.py": ((), ("--grid", "5:2")),
}
COMPARE = ["--experiment", "wine-quality-elasticnet", "--filter", "metrics.rmse < 1"]
SIZES = {
    "runs": (3, 1),  # timed runs of each warm command and of each import floor
    "cold_runs": (1, 0),  # timed runs of each lesson in a new store
    "fill_runs": (1000, 50),  # runs in the store that compare_runs.py searches
    "points": (10_000, 400),  # step-metric points per measurement
    "budget": (3.0, 0.2),  # seconds for the slow way of logging them
    "requests": (500, 30),  # timed requests to each model server
    "serve_all": (True, False),  # also the baseline's champion and a forest of 200 trees
}
# The sweep's champion, served as the README serves it; server() adds --port.
SERVE = shlex.split(
    "-m mlflow models serve -m models:/iris_classifier@champion --env-manager local"
    " --host 127.0.0.1"
)


def choose_sizes(quick):
    """What to measure: SIZES and FLAGS for a full run, or for a --quick one."""
    chosen = {name: pair[int(quick)] for name, pair in SIZES.items()}
    flags = {lesson: pair[int(quick)] for lesson, pair in FLAGS.items()}
    return SimpleNamespace(**chosen, flags=flags)


def spark_installed():
    return shutil.which("java") is not None and importlib.util.find_spec("pyspark") is not None


# %% A lesson's import floor: what no run of it can take less than
def module_level_imports(node):
    """The import statements run when the module runs: not those inside functions or classes."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from module_level_imports(child)  # in a try or an if at module level


def package_imports(script):
    """{statement: its package} for the script's own module-level imports of packages, as
    written. The standard library's are left out: the floor is the cost of the packages,
    which import most of those anyway. ruff (E401) keeps one module per ``import``."""
    statements = {}
    for node in module_level_imports(ast.parse(Path(script).read_text())):
        module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        package = module.partition(".")[0]
        if package not in sys.stdlib_module_names:
            statements[ast.unparse(node)] = package
    return statements


def time_import_floor(folder, runs, script):
    """hyperfine's result for ``python -c`` with the script's package imports, and the packages."""
    imports = package_imports(script)
    floor = hyperfine(folder, runs, "-c", "; ".join(imports))
    return floor, list(dict.fromkeys(imports.values()))


def time_full_import_floor(folder, runs, script, flags):
    """hyperfine's result for importing every module a run of the script loads, in the order
    it loaded them (loaded_modules.py), and how many modules that is. The run that records
    them is one more run of the script in its folder."""
    helper = BENCHMARKS / "loaded_modules.py"
    run_in(folder, helper, "record", "modules.txt", script, *flags)  # modules.txt in folder
    floor = hyperfine(folder, runs, helper, "import", "modules.txt")
    return floor, len((folder / "modules.txt").read_text().split())


# %% Processes: each with its own store, nothing beyond 127.0.0.1
def environment(folder, tracking_uri=None):
    return os.environ | {
        "MLFLOW_TRACKING_URI": tracking_uri or f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def run_in(folder, *args, tracking_uri=None):
    folder.mkdir(exist_ok=True)
    argv, env = [PYTHON, *map(str, args)], environment(folder, tracking_uri)
    subprocess.run(argv, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)


def hyperfine(folder, runs, *args, prepare=None):
    """hyperfine's result (--export-json) for ``python *args`` run ``runs`` times in ``folder``."""
    script, export, env = [PYTHON, *map(str, args)], folder / "hyperfine.json", environment(folder)
    typed = shlex.join(["python", *script[1:]]).replace(f"{REPO}{os.sep}", "")  # for the report
    argv = ["hyperfine", "--shell=none", "--style=basic", f"--runs={runs}", "--command-name", typed]
    argv += [f"--export-json={export}", *(["--prepare", prepare] if prepare else [])]
    if subprocess.run([*argv, shlex.join(script)], cwd=folder, env=env).returncode:
        subprocess.run(script, cwd=folder, env=env)  # hyperfine hides why: once more, output shown
        raise SystemExit(f"{typed} failed (its output is above)")
    return json.loads(export.read_text())["results"][0]


@contextlib.contextmanager
def server(folder, ready_path, *args):
    """Run ``python *args --port=N`` until the block ends, even on failure; yields N, startup s."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv, env = [PYTHON, *map(str, args), f"--port={port}"], environment(folder)
    log, started = folder / "server.log", time.perf_counter()
    with log.open("wb") as out:  # a new session: its own process group, its workers stop with it
        process = subprocess.Popen(
            argv, cwd=folder, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        while True:
            with contextlib.suppress(OSError):  # not listening yet
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", ready_path)
                if connection.getresponse().status == 200:
                    break
            if process.poll() is not None or time.perf_counter() - started > 180:
                raise SystemExit(f"{shlex.join(argv)} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield port, time.perf_counter() - started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # and whatever of its group still runs
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# %% The measurements, one function per section of BENCHMARKS.md
def time_lessons(work, sizes, lessons):
    """Each lesson cold (a new store) and warm (its store again), its import floor, and its
    baseline warm in a copy of its store. time_serving reuses the sweeps' folders."""
    rows = []
    for lesson, baseline, store_of in lessons:
        folder, flags = work / Path(store_of or lesson).name, sizes.flags.get(lesson, ())
        folder.mkdir(exist_ok=True)
        cold = None
        if sizes.cold_runs and store_of is None:
            new_store = "rm -rf mlflow.db mlruns"  # before each run
            cold = hyperfine(folder, sizes.cold_runs, REPO / lesson, *flags, prepare=new_store)
        warm = hyperfine(folder, sizes.runs, REPO / lesson, *flags)
        floor, packages = time_import_floor(folder, sizes.runs, REPO / lesson)
        full_floor, modules = time_full_import_floor(folder, sizes.runs, REPO / lesson, flags)
        base = None
        if baseline:
            baseline_folder = work / baseline
            baseline_folder.mkdir()
            shutil.copyfile(folder / "mlflow.db", baseline_folder / "mlflow.db")  # a warm store
            script = BENCHMARKS / "baselines" / baseline
            base = hyperfine(baseline_folder, sizes.runs, script, *flags)
        timings = {
            "cold": cold,
            "warm": warm,
            "floor": floor,
            "full_floor": full_floor,
            "baseline": base,
        }
        rows.append({"lesson": lesson, "packages": packages, "modules": modules, **timings})
    return rows


def time_step_metrics(work, sizes):
    """step_metrics.py against a SQLite store, then against `mlflow server` on 127.0.0.1."""
    folder, script = work / "step_metrics", [BENCHMARKS / "step_metrics.py"]
    script += [f"--points={sizes.points}", f"--repeats={sizes.runs}", f"--budget={sizes.budget}"]
    run_in(folder, *script, "--result=SQLite.json")
    # One worker: the client sends one request at a time, and it starts sooner than four.
    mlflow_server = ["-m", "mlflow", "server", "--host=127.0.0.1", "--workers=1"]
    mlflow_server += [f"--backend-store-uri=sqlite:///{folder / 'server.db'}"]
    with server(folder, "/health", *mlflow_server) as (port, startup):
        uri = f"http://127.0.0.1:{port}"
        run_in(folder, *script, "--result=tracking server.json", tracking_uri=uri)
    results = {store: json.loads((folder / f"{store}.json").read_text()) for store in report.STORES}
    return results | {"server_startup": startup}


def time_compare_runs(work, sizes):
    """compare_runs.py over an experiment of ``fill_runs`` runs, and its import floor."""
    folder = work / "compare_runs"
    run_in(folder, BENCHMARKS / "fill_store.py", f"--runs={sizes.fill_runs}")
    compare = [REPO / "compare_runs.py", *COMPARE, "--max-results", sizes.fill_runs]
    timing = hyperfine(folder, sizes.runs, *compare)
    floor, packages = time_import_floor(folder, sizes.runs, REPO / "compare_runs.py")
    full_floor, modules = time_full_import_floor(folder, sizes.runs, compare[0], compare[1:])
    return {
        "runs": sizes.fill_runs,
        "compare": timing,
        "floor": floor,
        "full_floor": full_floor,
        "packages": packages,
        "modules": modules,
    }


def time_serving(work, sizes):
    """`mlflow models serve` serving a sweep's champion; requests one after another on one
    connection."""
    stores = [("the sweep's champion", work / "train_iris_sweep.py")]
    if sizes.serve_all:
        run_in(work / "large_forest", REPO / "train_iris_sweep.py", "--grid", "200:10")
        stores += [
            ("the baseline sweep's champion (`n_jobs=-1`)", work / "baseline_iris_sweep.py"),
            ("a forest of 200 trees (`train_iris_sweep.py --grid 200:10`)", work / "large_forest"),
        ]
    results = []
    for model, folder in stores:
        with server(folder, "/ping", *SERVE) as (port, up):
            one_row = latencies(port, "POST", "/invocations", ONE_ROW, sizes.requests)
            ping = latencies(port, "GET", "/ping", None, sizes.requests)
        results.append({"model": model, "startup": up, "one_row": one_row, "ping": ping})
    return results


def latencies(port, method, path, body, count, warmup=20):
    """Milliseconds from sending a request to having read the answer: {p50, p99, requests}."""
    connection, times = http.client.HTTPConnection("127.0.0.1", port, timeout=60), []  # keep-alive
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


def machine(quick, spark):
    cpu = platform.processor() or "unknown CPU"
    with contextlib.suppress(OSError):  # Linux names the model here
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((line.split(":")[1].strip() for line in lines if "model name" in line), cpu)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in PACKAGES},
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_before": [round(load, 2) for load in os.getloadavg()],
        "quick": quick,
        "spark": spark,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each")
    parser.add_argument("--report", help="rewrite this file's tables (default: BENCHMARKS.md)")
    parser.add_argument("--results", help="also write the measurements to this JSON file")
    args = parser.parse_args()
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine is not installed: apt-get install hyperfine, or brew install.")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("Stopped by SIGTERM."))  # servers too
    measure, spark = choose_sizes(args.quick), spark_installed()
    lessons = LESSONS + (SPARK_LESSONS if spark else [])
    started, results = time.perf_counter(), {"machine": machine(args.quick, spark)}
    with tempfile.TemporaryDirectory(prefix="benchmarks-", ignore_cleanup_errors=True) as work:
        results["scripts"] = time_lessons(Path(work), measure, lessons)
        results["step_metrics"] = time_step_metrics(Path(work), measure)
        results["compare_runs"] = time_compare_runs(Path(work), measure)
        results["serving"] = time_serving(Path(work), measure)
    minutes = (time.perf_counter() - started) / 60
    results["machine"] |= {"load_after": [round(x, 2) for x in os.getloadavg()], "minutes": minutes}
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=2))
    print(report.targets(results), f"\n\nMeasured in {minutes:.1f} minutes.")
    path = args.report or (None if args.quick else REPO / "BENCHMARKS.md")  # not quick figures
    if path:
        Path(path).write_text(report.render(Path(path).read_text(), results))
        print(f"Wrote the tables of {path}.")


if __name__ == "__main__":
    main()
