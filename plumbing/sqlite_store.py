"""A SQLite store opened under a lock, or one sentence on why it cannot be used.

MLflow creates (and upgrades) a store's tables in whichever process opens it
first, without a lock: scripts started at once on a new store can break it for
good. Here each opens it under a lock on ``<store>.lock`` (fcntl; msvcrt on
Windows): the first creates the tables, the others wait. MLflow keeps it open.
"""

import contextlib
import errno
import os
import urllib.parse
from pathlib import Path

from plumbing.stopping import first_line


@contextlib.contextmanager
def _exclusive_lock(path):
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT)  # created if need be
    except OSError:  # a read-only folder or someone else's store: it can only be read
        yield
        return
    with open(descriptor, "r+b") as file:  # closing the file releases the lock
        if os.name == "nt":
            import msvcrt

            while True:
                try:
                    msvcrt.locking(file.fileno(), msvcrt.LK_LOCK, 1)  # tries for 10 s
                    break
                except OSError as error:  # after 10 s still held by another script: wait on
                    if error.errno != errno.EDEADLOCK:
                        raise
        else:
            import fcntl

            fcntl.flock(file, fcntl.LOCK_EX)
        yield


def open_sqlite_store(uri, writes):
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
    reason = first_line(error)
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
