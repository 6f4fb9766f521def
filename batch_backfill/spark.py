"""Spark session and s3a configuration of the backfill."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from app.settings import Settings

logger = logging.getLogger(__name__)

# The hadoop-aws version must match the Hadoop client inside pyspark 4.0.
S3A_VERSION = "3.4.1"
DEFAULT_APP_NAME = "socialstream-backfill"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_CONF = {
    "spark.driver.memory": "1g",
    "spark.executor.memory": "1g",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    # The archive is written by pyarrow in the proleptic Gregorian calendar.
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
}


def to_spark_path(archive_url: str, s3_scheme: str = "s3a") -> str:
    """Return the archive URL as Spark reads it.

    s3:// becomes ``s3_scheme``://, which is s3a:// unless the cluster has
    its own connector for s3:// (EMRFS on Amazon EMR).
    """
    parsed = urlparse(archive_url)
    if parsed.scheme in {"s3", "s3a"}:
        return f"{s3_scheme}://{parsed.netloc}{parsed.path}"
    if parsed.scheme in {"", "file"}:
        local = parsed.path if parsed.scheme else archive_url
        return str(Path(local).resolve())
    return archive_url


def s3a_options(settings: Settings) -> dict[str, str]:
    """Return the Hadoop s3a options for the configured endpoint and keys.

    Without keys, s3a falls back to its default credential chain, which
    reads the environment and the instance profile of an EC2 or EMR host.
    """
    options = {
        "fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.endpoint.region": settings.s3_region,
    }
    if settings.s3_endpoint:
        endpoint = urlparse(settings.s3_endpoint)
        options["fs.s3a.endpoint"] = settings.s3_endpoint
        options["fs.s3a.path.style.access"] = "true"
        options["fs.s3a.connection.ssl.enabled"] = str(
            endpoint.scheme == "https"
        ).lower()
    if settings.s3_access_key and settings.s3_secret_key:
        options["fs.s3a.access.key"] = settings.s3_access_key
        options["fs.s3a.secret.key"] = settings.s3_secret_key
        options["fs.s3a.aws.credentials.provider"] = (
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
        )
    return options


def default_tools_dir(environ: Mapping[str, str]) -> Path:
    """Return the folder where ``scripts/stack.py install`` puts its tools."""
    override = environ.get("SOCIALSTREAM_TOOLS_DIR")
    if override:
        return Path(override)
    cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "socialstream" / "tools"


def s3a_jars(tools_dir: Path) -> list[str]:
    """Return the hadoop-aws jars installed under ``tools_dir``, or none."""
    libs = tools_dir / f"spark-s3a-{S3A_VERSION}" / "libs"
    return sorted(str(path) for path in libs.glob("*.jar"))


def launched_by_spark_submit(environ: Mapping[str, str]) -> bool:
    """Return whether spark-submit started this Python process.

    pyspark itself reads this variable to decide between joining the
    driver JVM of spark-submit and launching a JVM of its own.
    """
    return "PYSPARK_GATEWAY_PORT" in environ


def session_conf(
    settings: Settings,
    *,
    master: str | None,
    jars: Sequence[str] = (),
    app_name: str = DEFAULT_APP_NAME,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the Spark configuration of a session, with the s3a options.

    ``master`` and ``jars`` are set only when given: under spark-submit they
    come from its command line, and setting them here would override it.
    """
    conf = {**DEFAULT_CONF, "spark.app.name": app_name}
    if master:
        conf["spark.master"] = master
    if jars:
        conf["spark.jars"] = ",".join(jars)
    for key, value in s3a_options(settings).items():
        conf[f"spark.hadoop.{key}"] = value
    conf.update(extra or {})
    return conf


def build_session(
    settings: Settings,
    *,
    app_name: str = DEFAULT_APP_NAME,
    master: str | None = None,
    extra: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> SparkSession:
    """Start a Spark session that can read s3a:// with the configured S3 settings.

    Without spark-submit, the session runs on ``master`` (default
    ``settings.spark_master``) with the hadoop-aws jars that
    ``scripts/stack.py install`` put in the tools folder, and
    ``PYSPARK_PYTHON`` is set to this interpreter when unset. Under
    spark-submit, its command line sets the master, the jars and the driver
    memory. ``environ`` defaults to ``os.environ``.
    """
    environ = os.environ if environ is None else environ
    if launched_by_spark_submit(environ):
        conf = session_conf(settings, master=master, app_name=app_name, extra=extra)
        return start_session(conf)
    # pyspark starts its Python workers with $PYSPARK_PYTHON, else with
    # "python3", which need not have this environment's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark_master = master or settings.spark_master
    if spark_master.startswith("local") or urlparse(spark_master).hostname in LOOPBACK:
        # Otherwise the driver binds the address its host name resolves to,
        # which can be a public interface. A SPARK_LOCAL_IP already set wins.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    tools_dir = default_tools_dir(environ)
    jars = s3a_jars(tools_dir)
    if not jars:
        logger.warning(
            "no hadoop-aws jars under %s, so reading s3a:// will fail; "
            "run 'scripts/stack.py install'",
            tools_dir,
        )
    conf = session_conf(
        settings,
        master=spark_master,
        jars=jars,
        app_name=app_name,
        extra=extra,
    )
    return start_session(conf)


def start_session(conf: Mapping[str, str]) -> SparkSession:
    """Return the active session, or a new one with ``conf``."""
    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


def configure_existing_session(spark: SparkSession, settings: Settings) -> None:
    """Apply the session options the job relies on to a session made elsewhere.

    Spark copies session options into the Hadoop configuration of each
    file scan, so the s3a keys take effect without the ``spark.hadoop.``
    prefix.
    """
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    for key, value in s3a_options(settings).items():
        spark.conf.set(key, value)
