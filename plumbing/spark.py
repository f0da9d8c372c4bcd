"""A Spark session for the Spark lessons: pyspark and Java checked first.

In local mode Spark binds to 127.0.0.1 (else to the machine's network address)
and its Java virtual machine uses the quick compiler and the simple garbage
collector: a short run starts about a third faster. No web UI, errors only in
its log (spark-log4j2.properties); its Python workers (a spark_udf's) run this
Python, not whatever ``python3`` is first on PATH.
"""

import contextlib
import functools
import os
import shutil
import sys
import time
from pathlib import Path

from plumbing import servers, stopping
from plumbing.store import REPO_ROOT

SPARK_INSTALL = "pip install -r requirements-spark.txt"
JAVA_INSTALL = (
    "install Java 17 or newer (Debian, Ubuntu: apt-get install openjdk-17-jre-headless; "
    "macOS: brew install openjdk@17; Windows: Eclipse Temurin 17) or set JAVA_HOME"
)
SPARK_LOG_CONFIG = REPO_ROOT / "spark-log4j2.properties"
LOCAL_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def _java_command():
    java_home = os.environ.get("JAVA_HOME")
    return shutil.which("java", path=str(Path(java_home, "bin")) if java_home else None)


def _spark_conf(master, app_name):
    from pyspark import SparkConf

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = SparkConf().setMaster(master).setAppName(app_name)
    conf.set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
    java_options = ""
    if SPARK_LOG_CONFIG.is_file():  # a copy of the lessons without it gets Spark's defaults
        java_options = f"-Dlog4j2.configurationFile={SPARK_LOG_CONFIG.as_uri()}"
    if master.startswith("local"):  # on a cluster, executors elsewhere must reach the driver
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf.set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
        java_options += f" {LOCAL_JVM_OPTIONS}"
    return conf.set("spark.driver.extraJavaOptions", java_options)


@contextlib.contextmanager
def spark_session(master, app_name):
    """A SparkSession on ``master`` for the block, stopped at its end, Ctrl+C included.

    A session already active (a notebook's, a test's) is used as it is and left
    running. Without pyspark or Java: one sentence, exit code 1. Ctrl+C waits
    until Java has started (stopped half-way, it would live on); a Spark call under
    way gets 5 s to finish, then its jobs are cancelled.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SystemExit(f"This lesson needs pyspark; install it: {SPARK_INSTALL}.") from None
    if _java_command() is None:
        where = "in JAVA_HOME" if os.environ.get("JAVA_HOME") else "on PATH"
        raise SystemExit(f"Spark runs on Java, and there is no java {where}: {JAVA_INSTALL}.")
    spark = existing = SparkSession.getActiveSession()
    cancel = None
    started = time.perf_counter()
    if existing is None:
        print(f"Starting Spark ({master}) ...", flush=True)
    try:
        spark = existing or _start(_spark_conf(master, app_name))
        if existing is None:
            print(f"Spark {spark.version} started in {time.perf_counter() - started:.1f} s")
        stopping.on_long_wait.add(cancel := functools.partial(_cancel_jobs, spark))
        yield spark
    finally:
        stopping.on_long_wait.discard(cancel)
        if existing is None and spark is not None:
            spark.stop()


def _start(conf):
    """Spark's Java process started in a thread of its own, Ctrl+C held until it is done.

    Started in the main thread, pyspark would put its own Ctrl+C handler in place
    of the workshop's; a Java process stopped half-way through its start lives on.
    """
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    with stopping.interrupts_held():
        servers.in_thread(lambda: SparkContext.getOrCreate(conf))
    # The session made here is this thread's active one (Spark keeps one per thread),
    # which is where MLflow looks for it.
    return SparkSession.builder.config(conf=conf).getOrCreate()


def _cancel_jobs(spark):
    """Cancel Spark's jobs, and those it starts next, until it is stopped."""
    while spark.sparkContext._jsc is not None:  # None once stopped
        with contextlib.suppress(Exception):  # stopping at that moment
            spark.sparkContext.cancelAllJobs()
        time.sleep(0.1)
