"""Run one script's ``main()`` in this process and time where its wall time goes.

Used by ``benchmarks/run.py``, one fresh process per measurement:

    python benchmarks/phases.py [--no-gc-freeze] RESULT.json SCRIPT.py [script arguments...]

The script is imported from its own folder and its ``main(argv)`` is called.
``--no-gc-freeze`` turns ``gc.freeze()`` into a no-op first, to measure what
the workshop's freezing (see workshop_store.py) saves.
Every second of the process is put into exactly one phase:

- ``import``: loading Python code, both the script's own imports and the
  modules that MLflow, scikit-learn and friends import lazily on first use
  (timed by wrapping ``builtins.__import__`` and ``importlib.import_module``;
  only imports that load at least one new module count).
- ``tracking``: MLflow calls that record things: experiment and run calls,
  ``log_param(s)``, ``log_metric(s)``, ``set_tag(s)``, ``log_input``,
  ``mlflow.data.from_pandas``, artifact calls, every ``MlflowClient`` method,
  and ``Figure.savefig`` (drawing a PNG to log it).
- ``model``: ``Model.log`` (what every ``mlflow.<flavor>.log_model`` calls)
  and ``infer_signature``.
- ``training``: the rest of ``main()``: loading data, fitting, predicting,
  scoring, building figures.

Wrapped calls count only at the outermost level (MLflow calls made inside
``log_model`` belong to model logging), and time is exclusive: a lazy import
inside ``log_model`` counts as import, not twice. The wrappers cost a few
microseconds per call. The caller measures the whole process from outside;
the difference is interpreter start-up and exit.
"""

import time

STARTED_AT = time.time()  # before anything else is imported: when Python got here

import builtins  # noqa: E402
import functools
import gc
import importlib
import json
import sys
import threading
import types
from pathlib import Path

TRACKING_FUNCTIONS = (
    "set_tracking_uri",
    "set_experiment",
    "get_experiment_by_name",
    "create_experiment",
    "start_run",
    "end_run",
    "log_param",
    "log_params",
    "log_metric",
    "log_metrics",
    "set_tag",
    "set_tags",
    "log_input",
    "log_inputs",
    "log_artifact",
    "log_artifacts",
    "log_text",
    "log_dict",
    "log_figure",
    "log_image",
    "log_table",
    "flush_async_logging",
    "search_runs",
    "register_model",
)


class PhaseClock:
    """A stack of phases with exclusive time per phase and inclusive time per call name."""

    def __init__(self):
        self.stack = []  # [phase, name, started, seconds spent in nested frames]
        self.phases = {"import": 0.0, "training": 0.0, "tracking": 0.0, "model": 0.0}
        self.calls = {}  # outermost wrapped call name -> [count, inclusive seconds]
        self.nested = {}  # wrapped call name -> count, at any depth (pages of a search, say)

    def push(self, phase, name=None):
        self.stack.append([phase, name, time.perf_counter(), 0.0])

    def pop(self, phase=None):
        """Close the innermost frame; ``phase`` overrides its phase, "" gives it to the parent."""
        frame_phase, name, started, nested = self.stack.pop()
        elapsed = time.perf_counter() - started
        if phase is None:
            phase = frame_phase
        if phase == "" and self.stack:
            phase = self.stack[-1][0]
        self.phases[phase] = self.phases.get(phase, 0.0) + elapsed - nested
        if self.stack:
            self.stack[-1][3] += elapsed
        if name is not None:
            count, seconds = self.calls.get(name, (0, 0.0))
            self.calls[name] = [count + 1, seconds + elapsed]

    def active(self):
        """Timing is on, and this is the main thread (worker threads are not timed)."""
        return bool(self.stack) and threading.get_ident() == MAIN_THREAD

    def outermost(self):
        """True when no tracking or model call is running (only training or import frames)."""
        return all(frame[0] in ("training", "import") for frame in self.stack)


MAIN_THREAD = threading.get_ident()
CLOCK = PhaseClock()


def timed(phase, name, function):
    if getattr(function, "_benchmark_timed", False):
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not CLOCK.active():
            return function(*args, **kwargs)
        CLOCK.nested[name] = CLOCK.nested.get(name, 0) + 1
        if not CLOCK.outermost():
            return function(*args, **kwargs)
        CLOCK.push(phase, name)
        try:
            return function(*args, **kwargs)
        finally:
            CLOCK.pop()

    wrapper._benchmark_timed = True
    return wrapper


def timed_import(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        if not CLOCK.active():
            return function(*args, **kwargs)
        loaded = len(sys.modules)
        CLOCK.push("import")
        try:
            return function(*args, **kwargs)
        finally:
            # An import of something already loaded is a dictionary look-up: its
            # few microseconds stay with whatever phase asked for it.
            CLOCK.pop(None if len(sys.modules) != loaded else "")

    return wrapper


def wrap_mlflow(script_module):
    """Replace MLflow's logging entry points (and the script's own references) with timed ones."""
    import mlflow
    import mlflow.data
    import mlflow.models
    import mlflow.models.model
    import mlflow.models.signature
    import mlflow.tracking.fluent as fluent
    from mlflow.tracking.client import MlflowClient

    for name in TRACKING_FUNCTIONS:
        original = getattr(fluent, name, None) or getattr(mlflow, name, None)
        if original is None:
            continue
        wrapped = timed("tracking", f"mlflow.{name}", original)
        for module in (mlflow, fluent):
            if hasattr(module, name):
                setattr(module, name, wrapped)
    mlflow.data.from_pandas = timed("tracking", "mlflow.data.from_pandas", mlflow.data.from_pandas)
    exit_run = fluent.ActiveRun.__exit__
    fluent.ActiveRun.__exit__ = timed("tracking", "mlflow.end_run", exit_run)
    for name, member in list(vars(MlflowClient).items()):
        if isinstance(member, types.FunctionType) and not name.startswith("_"):
            setattr(MlflowClient, name, timed("tracking", f"MlflowClient.{name}", member))
    if "matplotlib.figure" in sys.modules:  # not imported just to time it
        figure = sys.modules["matplotlib.figure"].Figure
        figure.savefig = timed("tracking", "Figure.savefig", figure.savefig)

    log = mlflow.models.model.Model.log.__func__
    mlflow.models.model.Model.log = classmethod(timed("model", "log_model", log))
    signature = timed("model", "infer_signature", mlflow.models.signature.infer_signature)
    mlflow.models.infer_signature = mlflow.models.signature.infer_signature = signature

    # ``from mlflow import log_metric`` style names in the script itself.
    for name, value in list(vars(script_module).items()):
        if value is mlflow.models.signature.infer_signature.__wrapped__:
            setattr(script_module, name, signature)
        elif name in TRACKING_FUNCTIONS and callable(value) and hasattr(fluent, name):
            setattr(script_module, name, getattr(fluent, name))


def run(script, argv):
    script = Path(script).resolve()
    sys.path.insert(0, str(script.parent))
    sys.argv = [str(script), *argv]
    builtins.__import__ = timed_import(builtins.__import__)
    importlib.import_module = timed_import(importlib.import_module)

    started = time.perf_counter()
    CLOCK.push("import")
    try:
        module = importlib.import_module(script.stem)
    finally:
        CLOCK.pop()
    CLOCK.push("import")  # the wrappers' own imports are loaded code too
    try:
        wrap_mlflow(module)
    finally:
        CLOCK.pop()
    error = None
    CLOCK.push("training")
    try:
        module.main(argv)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            error = f"SystemExit: {stop.code}"
    finally:
        while CLOCK.stack:
            CLOCK.pop()
    return {
        "phases": CLOCK.phases,
        "calls": {name: {"count": c, "seconds": s} for name, (c, s) in CLOCK.calls.items()},
        "all_calls": CLOCK.nested,
        "seconds_in_process": time.perf_counter() - started,
        "started_at": STARTED_AT,
        "error": error,
    }


def main():
    args = sys.argv[1:]
    if args[:1] == ["--no-gc-freeze"]:
        args = args[1:]
        gc.freeze = lambda: None
    if len(args) < 2:
        raise SystemExit(
            "usage: python benchmarks/phases.py [--no-gc-freeze] RESULT.json SCRIPT.py [ARGS...]"
        )
    result_path, script, *argv = args
    result = run(script, argv)
    result["finished_at"] = time.time()  # what comes after this is the interpreter's exit
    Path(result_path).write_text(json.dumps(result, indent=2))
    if result["error"]:
        raise SystemExit(result["error"])


if __name__ == "__main__":
    main()
