"""Ctrl+C, SIGTERM, a full disk, a file that may not be written: one line, what
was kept, and no run left RUNNING.

Ctrl+C half-way through a database write can leave the store locked, so the
interrupt waits (up to 5 s) for the MLflow call under way, and a second one
does not interrupt the closing of the run. What is still unfinished (a run, a
model being logged) is then marked FAILED, and the script ends as killed by
that signal (exit status 130 for Ctrl+C, 143 for SIGTERM); exit code 1 for a
full disk or a refused write.
"""

import _thread
import contextlib
import errno
import os
import signal
import sys
import threading
from time import monotonic

_interrupt = {}  # the signal that stopped the script, and the runs active then
_STORE_CODE = ("mlflow.store", "mlflow.tracking", "sqlalchemy", "sqlite3", "alembic")


def first_line(error):
    """The first line of ``error``'s message, else the name of its type."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _in_store_call(frame):
    while frame and not frame.f_globals.get("__name__", "").startswith(_STORE_CODE):
        frame = frame.f_back
    return frame is not None


def on_signal(signum, frame):
    if "signum" in _interrupt and not _interrupt.pop("lost", False):  # let the runs be closed
        return
    first = _interrupt.setdefault("first_seen", monotonic())
    if _in_store_call(frame) and monotonic() - first < 5:
        threading.Timer(0.05, _thread.interrupt_main, [signum]).start()
        return  # the same signal again in 50 ms
    mlflow = sys.modules.get("mlflow")  # perhaps half imported: then no run is active
    active = mlflow.active_run() if hasattr(mlflow, "active_run") else None
    runs = [active.info.run_id, active.data.tags.get("mlflow.parentRunId")] if active else []
    _interrupt.update(signum=signum, runs=[run_id for run_id in runs if run_id])
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _on_unraisable(unraisable):
    """An interrupt that Python could not pass on (raised in a weakref callback or a
    ``__del__``, whose errors it prints and ignores) is raised again, 10 ms later."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and "signum" in _interrupt:
        _interrupt["lost"] = True
        return threading.Timer(0.01, _thread.interrupt_main, [_interrupt["signum"]]).start()
    sys.__unraisablehook__(unraisable)


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
        reason = _disk_full(error) or first_line(error)
        return f"run {run_ids[0]} may still show RUNNING: the store refused the update ({reason})"
    runs = f"run {run_ids[0]} is" if len(run_ids) == 1 else f"runs {' and '.join(run_ids)} are"
    return f"{runs} marked FAILED, with what {'it' if len(run_ids) == 1 else 'they'} logged"


def _causes(error):
    """``error`` and the errors it was raised from, latest first."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _disk_full(error):
    """What says the disk is full, in ``error`` or the errors it was raised from, else None."""
    for cause in _causes(error):
        if getattr(cause, "errno", None) == errno.ENOSPC:
            return str(cause)
        if "disk is full" in str(cause):
            return "database or disk is full"
    return None


def _write_refused(error):
    """The file ``error`` (or an error it was raised from) may not write, else None."""
    for cause in _causes(error):
        if getattr(cause, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{cause.filename} ({cause.strerror})"
    return None


def _report_stop(exc_type, error, traceback):
    """Instead of a traceback: one line for an interrupt, a failed write or a sign-in refusal."""
    # Python turns an interrupt inside some of its machinery (a class being
    # created, say) into another error, "caused by" it: still an interrupt.
    if issubclass(exc_type, KeyboardInterrupt) or "signum" in _interrupt:
        return _report_interrupt()
    if getattr(error, "error_code", None) in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        from plumbing.store import tracking_uri, unreachable_message

        return print(unreachable_message(tracking_uri(), error), file=sys.stderr)
    if full := _disk_full(error):
        what, advice = f"the disk is full ({full})", "free some space"
    elif refused := _write_refused(error):  # say, MLflow writes into a model's folder on loading
        what = f"you may not write {refused}"
        advice = "make the store writable for you (is it another user's, or on a read-only disk?)"
    else:
        return sys.__excepthook__(exc_type, error, traceback)
    if "mlflow" in sys.modules:
        with contextlib.suppress(Exception):  # the store itself may be on the full disk
            _interrupt["runs"] = [sys.modules["mlflow"].last_active_run().info.run_id]
    if _interrupt.get("runs"):
        what += f": {_close_interrupted_runs(_interrupt['runs'])}"
    print(f"Stopped, {what}; {advice}.", file=sys.stderr)


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


def _stop_on_signals():
    """Ctrl+C and SIGTERM handled from the lesson's first line (``import plumbing``) on."""
    if threading.current_thread() is not threading.main_thread():
        return  # Python sets signal handlers in the main thread only
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # what the shell ignored stays so
            signal.signal(signum, on_signal)


_stop_on_signals()
sys.excepthook = _report_stop
sys.unraisablehook = _on_unraisable
