"""A Spark session for the Spark lessons: pyspark and Java checked first.

In local mode Spark binds to 127.0.0.1 (else to the machine's network address)
and its Java virtual machine uses the quick compiler and the simple garbage
collector: a short run starts about a third faster. No web UI, errors only in
its log (spark-log4j2.properties); its Python workers (a spark_udf's) run this
Python, not whatever ``python3`` is first on PATH.
"""

import contextlib
import os
import shutil
import sys
import time
from pathlib import Path

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
