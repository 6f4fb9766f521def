"""Project settings: one frozen object built from environment variables.

Every variable has a default that points at the local stack started by
``make stack-up``. Secrets have no default in code: the stack writes
generated credentials to ``<state dir>/stack.env`` on its first start, and a
variable missing from the environment is looked up there. This module uses
the standard library only, because the stack scripts import it before the
virtual environment exists.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STACK_ENV_FILE = "stack.env"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """An environment variable has a value that cannot be used."""


def _env_field(name: str, default: object, help_text: str) -> object:
    return field(default=default, metadata={"env": name, "help": help_text})


@dataclass(frozen=True, slots=True)
class Settings:
    state_dir: Path = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_STATE_DIR",
        PROJECT_ROOT / ".state",
        "Folder for service data, logs, pid files and reports.",
    )
    kafka_bootstrap: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_KAFKA_BOOTSTRAP",
        "127.0.0.1:9092",
        "Kafka bootstrap servers, comma-separated host:port.",
    )
    topic_partitions: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_TOPIC_PARTITIONS",
        4,
        "Partition count of every topic and table the application creates.",
    )
    topic_prefix: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_TOPIC_PREFIX",
        "",
        "Prefix for every topic name, to run isolated deployments on one broker.",
    )
    app_id: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_APP_ID",
        "socialstream",
        "Faust application id: consumer group and table changelog prefix.",
    )
    mongo_url: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_MONGO_URL",
        "mongodb://127.0.0.1:27017/",
        "MongoDB connection string (MongoDB 7 or FerretDB).",
    )
    mongo_db: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_MONGO_DB",
        "socialstream",
        "MongoDB database name.",
    )
    s3_endpoint: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_S3_ENDPOINT",
        "http://127.0.0.1:9000",
        "S3 endpoint URL; empty for AWS itself.",
    )
    s3_access_key: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_S3_ACCESS_KEY", "", "S3 access key id."
    )
    s3_secret_key: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_S3_SECRET_KEY", "", "S3 secret access key."
    )
    s3_region: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_S3_REGION", "us-east-1", "S3 region."
    )
    archive_url: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_ARCHIVE_URL",
        "s3://socialstream-archive/events",
        "Where the Parquet event archive lives: s3://bucket/prefix or a folder.",
    )
    archive_flush_rows: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_ARCHIVE_FLUSH_ROWS",
        50_000,
        "Rows per partition after which the archiver writes a Parquet file.",
    )
    archive_flush_seconds: float = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_ARCHIVE_FLUSH_SECONDS",
        30.0,
        "Age in seconds after which the archiver writes a partial file.",
    )
    api_host: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_API_HOST", "127.0.0.1", "Host the worker's web server binds."
    )
    api_port: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_API_PORT", 6066, "Port the worker's web server binds."
    )
    jwt_secret: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_JWT_SECRET", "", "HMAC secret that signs bearer tokens."
    )
    retention_days: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_RETENTION_DAYS",
        30,
        "Days of analytics the tables keep; older events are rejected.",
    )
    feed_cache_ms: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_FEED_CACHE_MS",
        25,
        "Milliseconds for which a feed page read from MongoDB is returned for "
        "identical requests; 0 reads MongoDB for every request.",
    )
    feed_stale_ms: int = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_FEED_STALE_MS",
        1000,
        "Milliseconds for which an older feed page is still returned at once "
        "while a new read runs in the background; 0 makes requests wait for it.",
    )
    spark_master: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_SPARK_MASTER",
        "local[2]",
        "Spark master URL for the backfill, such as spark://host:7077.",
    )
    log_level: str = _env_field(  # type: ignore[assignment]
        "SOCIALSTREAM_LOG_LEVEL", "INFO", "Log level of every entry point."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``)."""
        env = dict(os.environ if environ is None else environ)
        state_dir = Path(
            env.get("SOCIALSTREAM_STATE_DIR", str(PROJECT_ROOT / ".state"))
        )
        stack_env = read_env_file(state_dir / STACK_ENV_FILE)
        values: dict[str, object] = {}
        for spec in fields(cls):
            name = spec.metadata["env"]
            raw = env.get(name, stack_env.get(name))
            if raw is None:
                continue
            values[spec.name] = _convert(name, raw, spec.default)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise SettingsError naming the first variable with an unusable value."""
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(
                f"SOCIALSTREAM_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                f"got {self.log_level!r}"
            )
        if self.archive_flush_rows < 1:
            raise SettingsError(
                "SOCIALSTREAM_ARCHIVE_FLUSH_ROWS must be at least 1, "
                f"got {self.archive_flush_rows}"
            )
        if not 0 < self.archive_flush_seconds < math.inf:
            raise SettingsError(
                "SOCIALSTREAM_ARCHIVE_FLUSH_SECONDS must be a positive number of "
                f"seconds, got {self.archive_flush_seconds}"
            )
        if self.topic_partitions < 1:
            raise SettingsError(
                "SOCIALSTREAM_TOPIC_PARTITIONS must be at least 1, "
                f"got {self.topic_partitions}"
            )
        if not 1 <= self.retention_days <= 3650:
            raise SettingsError(
                "SOCIALSTREAM_RETENTION_DAYS must be between 1 and 3650, "
                f"got {self.retention_days}"
            )
        if not 0 <= self.feed_cache_ms <= 60_000:
            raise SettingsError(
                "SOCIALSTREAM_FEED_CACHE_MS must be between 0 and 60000, "
                f"got {self.feed_cache_ms}"
            )
        if not 0 <= self.feed_stale_ms <= 60_000:
            raise SettingsError(
                "SOCIALSTREAM_FEED_STALE_MS must be between 0 and 60000, "
                f"got {self.feed_stale_ms}"
            )
        if not 0 < self.api_port < 65536:
            raise SettingsError(
                f"SOCIALSTREAM_API_PORT must be a TCP port, got {self.api_port}"
            )

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def archive_is_s3(self) -> bool:
        return urlparse(self.archive_url).scheme in {"s3", "s3a"}

    def topic(self, name: str) -> str:
        """Return the full name of topic ``name`` with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    def redacted(self) -> dict[str, str]:
        """Return every setting as text, with secrets replaced by ``***``."""
        out: dict[str, str] = {}
        for spec in fields(self):
            value = str(getattr(self, spec.name))
            if spec.name.endswith(("secret", "secret_key")) and value:
                value = "***"
            out[spec.name] = value
        return out


def describe_variables() -> list[tuple[str, str, str]]:
    """Return (variable, default, help) for every setting, for docs and --help."""
    rows = []
    for spec in fields(Settings):
        default = spec.default
        if isinstance(default, Path):
            default = ".state" if default == PROJECT_ROOT / ".state" else default
        rows.append((spec.metadata["env"], str(default), spec.metadata["help"]))
    return rows


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines; a missing file gives an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def _convert(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        kind = "an integer" if isinstance(default, int) else "a number"
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None
    if isinstance(default, Path):
        return Path(raw)
    return raw
