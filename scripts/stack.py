"""Install, start, stop and check the local stack of real services.

Usage: python scripts/stack.py {install,up,down,status,spark-up,spark-down}

Services: the Apache Kafka broker in KRaft mode (jars from Maven Central),
FerretDB (built from the Go module proxy, SQLite backend), MinIO (built with
``go install``) and, on request, a Spark standalone master and worker.
Binaries are cached under the tools folder, so a second install is a no-op;
data, logs and pid files live under the state folder. The script uses the
standard library only, so it runs before the virtual environment exists, and
every failure ends in one sentence that names the service, the reason and
the log to read.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.settings import (  # noqa: E402
    PROJECT_ROOT,
    STACK_ENV_FILE,
    Settings,
    read_env_file,
)

KAFKA_VERSION = "3.9.1"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
MINIO_MODULE = "github.com/minio/minio"
# MinIO publishes no semantic versions to the Go module proxy; this pseudo
# version is the commit of 2026-02-12 that builds with Go 1.26.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
S3A_VERSION = "3.4.1"
KAFKA_HEAP = "-Xms256m -Xmx768m"
START_TIMEOUT_S = 90.0


class StackError(RuntimeError):
    """A service could not be installed, started or stopped."""


@dataclass(frozen=True)
class Paths:
    state: Path
    tools: Path

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    def pid(self, service: str) -> Path:
        return self.pids / f"{service}.pid"


def default_tools_dir() -> Path:
    override = os.environ.get("SOCIALSTREAM_TOOLS_DIR")
    if override:
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "socialstream" / "tools"


# ---------------------------------------------------------------- processes


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    if _is_zombie(pid):
        return None
    return pid


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def spawn(
    paths: Paths,
    service: str,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.pids.mkdir(parents=True, exist_ok=True)
    log = paths.log(service).open("ab")
    log.write(f"\n--- start {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
    log.flush()
    process = subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    paths.pid(service).write_text(str(process.pid))
    return process.pid


def stop_pid_file(paths: Paths, service: str, timeout: float = 20.0) -> bool:
    """Stop the process group of ``service``; return whether one was running."""
    pid_file = paths.pid(service)
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and read_pid(pid_file) is not None:
        time.sleep(0.2)
    if read_pid(pid_file) is not None:
        _signal_group(pid, signal.SIGKILL)
        time.sleep(0.5)
    pid_file.unlink(missing_ok=True)
    # A worker started by app.cli records its application id beside its pid.
    pid_file.with_suffix(".app_id").unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def wait_until(
    check: Callable[[], bool], service: str, paths: Paths, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if read_pid(paths.pid(service)) is None:
            raise StackError(
                f"{service} exited during start-up; read {paths.log(service)}"
            )
        time.sleep(0.5)
    raise StackError(
        f"{service} did not become healthy within {timeout:.0f} s; "
        f"read {paths.log(service)}"
    )


def ensure_port_free(service: str, host: str, port: int, variable: str) -> None:
    if port_open(host, port):
        raise StackError(
            f"{service} cannot start: port {port} on {host} is already in use by "
            f"another process; stop that process or set {variable} to a free port"
        )


def run_tool(argv: Sequence[str], service: str, log: Path, **kwargs: object) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n--- {' '.join(argv)} ---\n".encode())
        out.flush()
        result = subprocess.run(  # type: ignore[call-overload]
            list(argv), stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
        )
    if result.returncode != 0:
        raise StackError(
            f"installing {service} failed: {argv[0]} exited with "
            f"{result.returncode} (a registry may be unreachable); read {log}"
        )


def require_tool(name: str, service: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(
            f"installing {service} needs '{name}' on PATH, and it was not found; "
            f"install it (Java 17, Go 1.22+ and Maven 3.8+ are required)"
        )
    return path


# ---------------------------------------------------------------- installs


def kafka_home(paths: Paths) -> Path:
    return paths.tools / f"kafka-{KAFKA_VERSION}"


def install_kafka(paths: Paths) -> None:
    require_tool("java", "kafka")
    _install_maven_project(
        paths, kafka_home(paths), "kafka", "kafka", f"Kafka {KAFKA_VERSION}"
    )


def s3a_home(paths: Paths) -> Path:
    return paths.tools / f"spark-s3a-{S3A_VERSION}"


def install_s3a(paths: Paths) -> None:
    _install_maven_project(
        paths, s3a_home(paths), "spark-s3a", "spark-s3a", f"hadoop-aws {S3A_VERSION}"
    )


def _install_maven_project(
    paths: Paths, home: Path, stack_folder: str, service: str, label: str
) -> None:
    """Copy the runtime jars of ``stack/<stack_folder>/pom.xml`` into ``home``."""
    if (home / ".complete").exists():
        return
    mvn = require_tool("mvn", service)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "stack" / stack_folder / "pom.xml", home / "pom.xml")
    print(f"installing {label} from Maven Central ...", flush=True)
    run_tool(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(home / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={home / 'libs'}",
            "-DincludeScope=runtime",
        ],
        service,
        paths.log("install"),
    )
    (home / ".complete").touch()


def ferretdb_binary(paths: Paths) -> Path:
    return paths.tools / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def install_ferretdb(paths: Paths) -> None:
    binary = ferretdb_binary(paths)
    if binary.exists():
        return
    go = require_tool("go", "ferretdb")
    print(
        f"building FerretDB {FERRETDB_VERSION} from the Go module proxy ...", flush=True
    )
    log = paths.log("install")
    # FerretDB embeds build/version/version.txt, which its release tooling
    # generates and the module zip lacks, so `go install` alone builds a
    # binary that panics at start-up. Build from a writable copy instead.
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if download.returncode != 0:
        raise StackError(
            "installing ferretdb failed: go mod download could not fetch "
            f"{FERRETDB_MODULE}@{FERRETDB_VERSION}: {download.stdout.strip()} "
            f"{download.stderr.strip()}"
        )
    source = Path(json.loads(download.stdout)["Dir"])
    work = paths.tools / "ferretdb-src"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    for path in work.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    work.chmod(work.stat().st_mode | 0o200)
    version_dir = work / "build" / "version"
    (version_dir / "version.txt").write_text(FERRETDB_VERSION + "\n")
    (version_dir / "package.txt").write_text("socialstream\n")
    binary.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [go, "build", "-o", str(binary), "./cmd/ferretdb"], "ferretdb", log, cwd=work
    )
    shutil.rmtree(work, ignore_errors=True)


def minio_binary(paths: Paths) -> Path:
    return paths.tools / "minio" / "minio"


def install_minio(paths: Paths) -> None:
    binary = minio_binary(paths)
    if binary.exists():
        return
    go = require_tool("go", "minio")
    print("building MinIO from the Go module proxy (a few minutes) ...", flush=True)
    binary.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"],
        "minio",
        paths.log("install"),
        env={**os.environ, "GOBIN": str(binary.parent)},
    )


def install_all(paths: Paths) -> None:
    install_kafka(paths)
    install_ferretdb(paths)
    install_minio(paths)
    install_s3a(paths)


# ---------------------------------------------------------------- credentials


def ensure_stack_env(settings: Settings) -> dict[str, str]:
    """Create the local stack's generated secrets once and return them."""
    path = settings.state_dir / STACK_ENV_FILE
    values = read_env_file(path)
    wanted = {
        "SOCIALSTREAM_S3_ACCESS_KEY": lambda: "socialstream",
        "SOCIALSTREAM_S3_SECRET_KEY": lambda: secrets.token_hex(16),
        "SOCIALSTREAM_JWT_SECRET": lambda: secrets.token_hex(32),
        "SOCIALSTREAM_KAFKA_CLUSTER_ID": lambda: _kafka_cluster_id(),
    }
    changed = False
    for key, make in wanted.items():
        if key not in values:
            values[key] = make()
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Generated by scripts/stack.py for the local stack only."]
        lines += [f"{key}={value}" for key, value in sorted(values.items())]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
    return values


def _kafka_cluster_id() -> str:
    import base64

    raw = uuid.uuid4().bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------- kafka


def kafka_ports(settings: Settings) -> tuple[str, int, int]:
    first = settings.kafka_bootstrap.split(",")[0]
    host, port = host_port(first)
    controller = int(os.environ.get("SOCIALSTREAM_KAFKA_CONTROLLER_PORT", port + 1))
    return host, port, controller


def kafka_metadata_ok(host: str, port: int) -> bool:
    """Send a Metadata v0 request and return whether a broker responded."""
    client_id = b"socialstream-stack"
    body = struct.pack(">hhih", 3, 0, 7, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            size = struct.unpack(">i", header)[0]
            payload = _recv_exact(sock, size)
    except OSError:
        return False
    correlation, brokers = struct.unpack(">ii", payload[:8])
    return correlation == 7 and brokers >= 1


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed")
        chunks += chunk
    return bytes(chunks)


def start_kafka(settings: Settings, paths: Paths, stack_env: dict[str, str]) -> str:
    host, port, controller = kafka_ports(settings)
    if read_pid(paths.pid("kafka")) is not None and kafka_metadata_ok(host, port):
        return "already running"
    ensure_port_free("kafka", host, port, "SOCIALSTREAM_KAFKA_BOOTSTRAP")
    ensure_port_free("kafka", host, controller, "SOCIALSTREAM_KAFKA_CONTROLLER_PORT")
    install_kafka(paths)
    home = kafka_home(paths)
    data = paths.state / "kafka" / "data"
    config = paths.state / "kafka" / "server.properties"
    data.mkdir(parents=True, exist_ok=True)
    config.write_text(_kafka_config(host, port, controller, data, settings))
    log4j = paths.state / "kafka" / "log4j.properties"
    log4j.write_text(
        "log4j.rootLogger=INFO, stdout\n"
        "log4j.logger.kafka.request.logger=WARN\n"
        "log4j.logger.state.change.logger=WARN\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    java = require_tool("java", "kafka")
    classpath = str(home / "libs" / "*")
    jvm = [
        java,
        *KAFKA_HEAP.split(),
        f"-Dlog4j.configuration=file:{log4j}",
        "-cp",
        classpath,
    ]
    if not (data / "meta.properties").exists():
        run_tool(
            [
                *jvm,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                stack_env["SOCIALSTREAM_KAFKA_CLUSTER_ID"],
                "-c",
                str(config),
            ],
            "kafka",
            paths.log("kafka"),
        )
    spawn(paths, "kafka", [*jvm, "kafka.Kafka", str(config)])
    wait_until(lambda: kafka_metadata_ok(host, port), "kafka", paths, START_TIMEOUT_S)
    return "started"


def _kafka_config(
    host: str, port: int, controller: int, data: Path, settings: Settings
) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{controller}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={settings.topic_partitions}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=-1",
            "log.segment.bytes=104857600",
            "message.max.bytes=2097152",
            "",
        ]
    )


# ---------------------------------------------------------------- ferretdb


def mongo_ping_ok(host: str, port: int) -> bool:
    """Send an OP_MSG ``ping`` and return whether the server responded ok."""
    document = _bson({"ping": 1, "$db": "admin"})
    body = struct.pack("<I", 0) + b"\x00" + document
    header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(header + body)
            size = struct.unpack("<i", _recv_exact(sock, 4))[0]
            reply = _recv_exact(sock, size - 4)
    except OSError:
        return False
    return b"ok\x00" in reply and reply[12:16] != b""


def _bson(document: dict[str, object]) -> bytes:
    out = bytearray()
    for key, value in document.items():
        name = key.encode() + b"\x00"
        if isinstance(value, int):
            out += b"\x10" + name + struct.pack("<i", value)
        else:
            text = str(value).encode() + b"\x00"
            out += b"\x02" + name + struct.pack("<i", len(text)) + text
    return struct.pack("<i", len(out) + 5) + bytes(out) + b"\x00"


def start_ferretdb(settings: Settings, paths: Paths) -> str:
    parsed = urlparse(settings.mongo_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 27017
    if read_pid(paths.pid("ferretdb")) is not None and mongo_ping_ok(host, port):
        return "already running"
    ensure_port_free("ferretdb", host, port, "SOCIALSTREAM_MONGO_URL")
    install_ferretdb(paths)
    data = paths.state / "ferretdb" / "data"
    data.mkdir(parents=True, exist_ok=True)
    spawn(
        paths,
        "ferretdb",
        [
            str(ferretdb_binary(paths)),
            "--handler=sqlite",
            f"--sqlite-url=file:{data}/",
            f"--state-dir={paths.state / 'ferretdb'}",
            f"--listen-addr={host}:{port}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ],
    )
    wait_until(lambda: mongo_ping_ok(host, port), "ferretdb", paths, START_TIMEOUT_S)
    return "started"


# ---------------------------------------------------------------- minio


def s3_live(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/minio/health/live", timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def start_minio(settings: Settings, paths: Paths, stack_env: dict[str, str]) -> str:
    parsed = urlparse(settings.s3_endpoint)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 9000
    if read_pid(paths.pid("minio")) is not None and s3_live(settings.s3_endpoint):
        return "already running"
    ensure_port_free("minio", host, port, "SOCIALSTREAM_S3_ENDPOINT")
    install_minio(paths)
    data = paths.state / "minio" / "data"
    data.mkdir(parents=True, exist_ok=True)
    console = int(os.environ.get("SOCIALSTREAM_MINIO_CONSOLE_PORT", port + 1))
    env = {
        "MINIO_ROOT_USER": stack_env["SOCIALSTREAM_S3_ACCESS_KEY"],
        "MINIO_ROOT_PASSWORD": stack_env["SOCIALSTREAM_S3_SECRET_KEY"],
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    spawn(
        paths,
        "minio",
        [
            str(minio_binary(paths)),
            "server",
            str(data),
            "--quiet",
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{console}",
        ],
        env=env,
    )
    wait_until(lambda: s3_live(settings.s3_endpoint), "minio", paths, START_TIMEOUT_S)
    return "started"


def ensure_bucket(settings: Settings) -> str:
    """Create the archive bucket with the venv's s3fs, when the archive is on S3."""
    if not settings.archive_is_s3:
        return "archive is a local folder"
    bucket = urlparse(settings.archive_url).netloc
    python = PROJECT_ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        return "bucket not checked: no virtual environment yet"
    code = (
        "import sys\n"
        "from app.storage import s3_filesystem\n"
        "from app.settings import Settings\n"
        "fs = s3_filesystem(Settings.from_env())\n"
        "b = sys.argv[1]\n"
        "fs.exists(b) or fs.mkdir(b)\n"
        "print('ok' if fs.exists(b) else 'missing')\n"
    )
    result = subprocess.run(
        [str(python), "-c", code, bucket],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if result.returncode != 0 or "ok" not in result.stdout:
        raise StackError(
            f"minio is running but bucket {bucket!r} could not be created: "
            f"{result.stderr.strip().splitlines()[-1:] or result.stdout}"
        )
    return f"bucket {bucket} exists"


# ---------------------------------------------------------------- spark


def spark_home() -> Path:
    python = PROJECT_ROOT / ".venv" / "bin" / "python"
    result = subprocess.run(
        [
            str(python),
            "-c",
            "import pyspark, os; print(os.path.dirname(pyspark.__file__))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError("spark needs pyspark in .venv; run 'make venv' first")
    return Path(result.stdout.strip())


def spark_ports() -> tuple[int, int, int]:
    master = int(os.environ.get("SOCIALSTREAM_SPARK_MASTER_PORT", "7077"))
    master_ui = int(os.environ.get("SOCIALSTREAM_SPARK_MASTER_UI_PORT", "8080"))
    worker_ui = int(os.environ.get("SOCIALSTREAM_SPARK_WORKER_UI_PORT", "8081"))
    return master, master_ui, worker_ui


def start_spark(paths: Paths) -> str:
    master_port, master_ui, worker_ui = spark_ports()
    url = f"spark://127.0.0.1:{master_port}"
    if read_pid(paths.pid("spark-worker")) is not None and _spark_worker_alive(
        master_ui
    ):
        return f"already running at {url}"
    home = spark_home()
    spark_class = home / "bin" / "spark-class"
    spark_class.chmod(spark_class.stat().st_mode | 0o111)
    env = {
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(paths.logs),
        "SPARK_WORKER_DIR": str(paths.state / "spark" / "work"),
        "PYSPARK_PYTHON": str(PROJECT_ROOT / ".venv" / "bin" / "python"),
        "SPARK_DAEMON_MEMORY": "512m",
    }
    if read_pid(paths.pid("spark-master")) is None:
        ensure_port_free(
            "spark-master", "127.0.0.1", master_port, "SOCIALSTREAM_SPARK_MASTER_PORT"
        )
        spawn(
            paths,
            "spark-master",
            [
                str(spark_class),
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(master_port),
                "--webui-port",
                str(master_ui),
            ],
            env=env,
        )
        wait_until(
            lambda: port_open("127.0.0.1", master_port),
            "spark-master",
            paths,
            START_TIMEOUT_S,
        )
    if read_pid(paths.pid("spark-worker")) is None:
        spawn(
            paths,
            "spark-worker",
            [
                str(spark_class),
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                "2",
                "--memory",
                "2g",
                "--webui-port",
                str(worker_ui),
                url,
            ],
            env=env,
        )
    wait_until(
        lambda: _spark_worker_alive(master_ui), "spark-worker", paths, START_TIMEOUT_S
    )
    return f"started at {url}"


def _spark_worker_alive(master_ui: int) -> bool:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{master_ui}/json/", timeout=2
        ) as response:
            state = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return any(w.get("state") == "ALIVE" for w in state.get("workers", []))


# ---------------------------------------------------------------- commands


SERVICES = ("kafka", "ferretdb", "minio")
EVERYTHING = (
    "api",
    "worker",
    "worker-2",
    "spark-worker",
    "spark-master",
    *reversed(SERVICES),
)


def command_up(settings: Settings, paths: Paths) -> None:
    stack_env = ensure_stack_env(settings)
    # Reload so the generated credentials reach the settings of this run.
    settings = Settings.from_env()
    results = {
        "kafka": start_kafka(settings, paths, stack_env),
        "ferretdb": start_ferretdb(settings, paths),
        "minio": start_minio(settings, paths, stack_env),
    }
    results["bucket"] = ensure_bucket(settings)
    install_s3a(paths)
    for service, state in results.items():
        print(f"{service:10} {state}")
    print(f"stack healthy; logs in {paths.logs}")


def command_down(paths: Paths, services: Sequence[str] = EVERYTHING) -> None:
    for service in services:
        if stop_pid_file(paths, service):
            print(f"{service:12} stopped")


def report_leftover_ports(settings: Settings) -> None:
    host, port, controller = kafka_ports(settings)
    mongo = urlparse(settings.mongo_url)
    s3 = urlparse(settings.s3_endpoint)
    ports = {
        "kafka": (host, port),
        "kafka controller": (host, controller),
        "ferretdb": (mongo.hostname or "127.0.0.1", mongo.port or 27017),
        "minio": (s3.hostname or "127.0.0.1", s3.port or 9000),
        "api": (settings.api_host, settings.api_port),
    }
    for name, (address, number) in ports.items():
        if port_open(address, number):
            print(
                f"warning: port {number} ({name}) is still in use by a process "
                "this stack did not start",
                file=sys.stderr,
            )


def command_status(settings: Settings, paths: Paths) -> int:
    host, port, _ = kafka_ports(settings)
    mongo = urlparse(settings.mongo_url)
    checks = {
        "kafka": kafka_metadata_ok(host, port),
        "ferretdb": mongo_ping_ok(mongo.hostname or "127.0.0.1", mongo.port or 27017),
        "minio": s3_live(settings.s3_endpoint),
    }
    unhealthy = 0
    for service, healthy in checks.items():
        pid = read_pid(paths.pid(service))
        state = "healthy" if healthy else "down"
        owner = f"pid {pid}" if pid else "not started by this stack"
        print(f"{service:10} {state:8} {owner}")
        unhealthy += not healthy
    for service in ("worker", "worker-2", "api", "spark-master", "spark-worker"):
        pid = read_pid(paths.pid(service))
        if pid:
            print(f"{service:10} running  pid {pid}")
    return 1 if unhealthy else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=[
            "install",
            "up",
            "down",
            "down-services",
            "status",
            "spark-up",
            "spark-down",
        ],
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    paths = Paths(state=settings.state_dir, tools=default_tools_dir())
    try:
        if args.command == "install":
            install_all(paths)
        elif args.command == "up":
            command_up(settings, paths)
        elif args.command == "down":
            command_down(paths)
            report_leftover_ports(settings)
        elif args.command == "down-services":
            command_down(paths, ("spark-worker", "spark-master", *reversed(SERVICES)))
        elif args.command == "status":
            return command_status(settings, paths)
        elif args.command == "spark-up":
            install_s3a(paths)
            print(f"spark      {start_spark(paths)}")
        elif args.command == "spark-down":
            command_down(paths, ("spark-worker", "spark-master"))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
