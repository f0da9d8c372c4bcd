"""Ctrl+C, SIGTERM, a closed terminal, a full disk, a file that may not be written:
one line, what was kept, and no run left RUNNING.

Ctrl+C half-way through a database write can leave the store locked, so the
interrupt waits (up to 7 s) for the MLflow or Spark call under way, and a second
one does not interrupt the closing of the run. What is still unfinished (a run, a
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
# Calls that an interrupt lets finish: the store's, and Spark's. After WAIT_SECONDS
# the actions in ``on_long_wait`` start (Spark: cancel its jobs); after 2 s more it
# interrupts whatever runs.
_STORE_CODE = ("mlflow.store", "mlflow.tracking", "sqlalchemy", "sqlite3", "alembic")
_STORE_CODE += ("py4j", "pyspark")
WAIT_SECONDS = 5
on_long_wait = set()


def first_line(error):
    """The first line of ``error``'s message, else the name of its type."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _store_caller(frame):
    """The frame that called into the store (or Spark), if ``frame`` is in such a call."""
    caller = None
    while frame:
        if frame.f_globals.get("__name__", "").startswith(_STORE_CODE):
            caller = frame.f_back
        frame = frame.f_back
    return caller


def _active_runs():
    mlflow = sys.modules.get("mlflow")  # perhaps half imported: then no run is active
    active = mlflow.active_run() if hasattr(mlflow, "active_run") else None
    runs = [active.info.run_id, active.data.tags.get("mlflow.parentRunId")] if active else []
    return [run_id for run_id in runs if run_id]


@contextlib.contextmanager
def interrupts_held():
    """Ctrl+C and SIGTERM wait for the end of the block (say, Spark's Java process starting)."""
    _interrupt["held"] = None
    try:
        yield
    finally:
        if (signum := _interrupt.pop("held")) is not None:
            on_signal(signum, None)


def on_signal(signum, frame):
    if "held" in _interrupt:
        _interrupt["held"] = signum
        return
    if "signum" in _interrupt and not _interrupt.pop("lost", False):  # let the runs be closed
        return
    waited = monotonic() - _interrupt.setdefault("first_seen", monotonic())
    caller = _store_caller(frame)
    if caller and waited < WAIT_SECONDS + 2:
        if "pending" not in _interrupt:  # the first time: come back when the wait is over
            threading.Timer(WAIT_SECONDS, _thread.interrupt_main, [signum]).start()
        elif waited >= WAIT_SECONDS:  # the call is taking long: help it end, wait 2 s more
            threading.Timer(2, _thread.interrupt_main, [signum]).start()
            for action in on_long_wait:
                threading.Thread(target=action, daemon=True).start()
        _interrupt.update(pending=signum, runs_seen=_active_runs() or _interrupt.get("runs_seen"))
        # Raise the interrupt in the caller as soon as the call has returned to it.
        caller.f_trace, caller.f_trace_lines = _raise_pending, True
        return sys.settrace(_trace_nothing)  # Python calls a frame's f_trace only with a tracer
    sys.settrace(None)
    _interrupt.update(signum=signum, runs=_active_runs())
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _trace_nothing(frame, event, arg):
    return None  # no frame is traced but the one given _raise_pending


def _raise_pending(frame, event, arg):
    if event == "line":  # back in the caller, at its next line
        frame.f_trace = None
        on_signal(_interrupt["pending"], None)
    elif event == "return" and frame.f_back:  # the caller returns: raise in its caller
        frame.f_back.f_trace, frame.f_back.f_trace_lines = _raise_pending, True
    return _raise_pending


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
    import mlflow
    from mlflow.entities import LoggedModelStatus

    # The registry named too: MLflow would otherwise ask Spark (if loaded) for one.
    uri, failed = mlflow.get_tracking_uri(), []
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        for run_id in run_ids:
            run = client.get_run(run_id)
            if run.info.status == "RUNNING":
                client.set_terminated(run_id, "FAILED")
            if run.info.status != "FINISHED":  # it might have ended just before the interrupt
                failed.append(run_id)
            where = f"source_run_id = '{run_id}'"
            for model in client.search_logged_models([run.info.experiment_id], where):
                if model.status == LoggedModelStatus.PENDING:
                    client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
    except Exception as error:  # the store is gone or full: say so, and stop anyway
        reason = _disk_full(error) or first_line(error)
        return (
            f"run {run_ids[0]} may still show RUNNING, the store refused the update ({reason}): "
            "README.md, 'When things go wrong', says how to mark it FAILED"
        )
    if not failed:
        return "the runs had finished"
    runs = f"run {failed[0]} is" if len(failed) == 1 else f"runs {' and '.join(failed)} are"
    return f"{runs} marked FAILED, with what {'it' if len(failed) == 1 else 'they'} logged"


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
    if issubclass(exc_type, KeyboardInterrupt) or {"signum", "pending"} & _interrupt.keys():
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
    # Interrupted in a Spark call that then failed, it may not have been raised at all.
    signum = _interrupt.get("signum", _interrupt.get("pending", signal.SIGINT))
    what = "Ctrl+C" if signum == signal.SIGINT else signal.Signals(signum).name
    kept = _close_interrupted_runs(_interrupt.get("runs") or _interrupt.get("runs_seen") or [])
    with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no more lines
        print(f"Stopped by {what}: {kept}.", file=sys.stderr, flush=True)
        sys.stdout.flush()
    if os.name == "nt":
        os._exit(0xC000013A)  # what Windows reports for a program stopped by Ctrl+C
    signal.signal(signum, signal.SIG_DFL)  # then stop as that signal would have
    os.kill(os.getpid(), signum)


def _stop_on_signals():
    """Ctrl+C, SIGTERM and a closed terminal (SIGHUP, not on Windows) handled from the
    lesson's first line (``import plumbing``) on."""
    if threading.current_thread() is not threading.main_thread():
        return  # Python sets signal handlers in the main thread only
    for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # what the shell ignored stays so
            signal.signal(signum, on_signal)


_stop_on_signals()
sys.excepthook = _report_stop
sys.unraisablehook = _on_unraisable
