"""Real servers for the suite, started once per session on 127.0.0.1 and stopped at its end:
PostgreSQL 15 (Debian's ``postgresql``), S3 (moto's standalone server), Redis (Debian's
``redis-server``) and an MLflow tracking server over the first two.

`make test` installs the Debian packages (scripts/test-services.sh); a missing binary fails
the test that needs it with what to install instead of skipping it silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "stockcast-test"  # moto accepts any key; nothing secret here
SECRET_KEY = "stockcast-test-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], what: str, process: subprocess.Popen | None, seconds: float = 60
) -> None:
    """Poll ``ready`` until it holds; fail with ``what`` when the deadline passes or the
    process exits first."""
    deadline = time.monotonic() + seconds
    while not ready():
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what} exited with code {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} was not ready after {seconds:.0f} s")
        time.sleep(0.1)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return int(answer.status) < 500
    except OSError:
        return False


def _required(binary: str | None, package: str) -> str:
    if binary is None:
        pytest.fail(f"{package} is not installed: `make test` installs it (Debian package {package})")
    return binary


# -- PostgreSQL ------------------------------------------------------------------------------
@dataclass
class Postgres:
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def execute(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(statement)  # type: ignore[arg-type]

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server (fault tests); ``start`` brings it back on the same port."""
        _pg_ctl(self, "stop", "-m", "fast")

    def start(self) -> None:
        _pg_ctl(self, "start")


_POSTGRES_STATE: dict[int, tuple[list[str], str]] = {}


def _pg_ctl(server: Postgres, *arguments: str) -> None:
    prefix, data = _POSTGRES_STATE[server.port]
    options = f"-p {server.port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    command = [*prefix, _postgres_bin("pg_ctl"), "-D", data, "-w", "-l", f"{data}/server.log"]
    if arguments[0] == "start":
        command += ["-o", options]
    subprocess.run([*command, *arguments], check=True, capture_output=True)


def _postgres_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return _required(found[-1] if found else shutil.which(name), "postgresql")


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """A throwaway cluster (initdb + pg_ctl, trust authentication on loopback only)."""
    # Not under pytest's temporary root: that is private to this user, and the server may run
    # as another one.
    data = Path(tempfile.mkdtemp(prefix="stockcast-postgres-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        shutil.chown(data, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, _postgres_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    server = Postgres("127.0.0.1", free_port(), "postgres")
    _POSTGRES_STATE[server.port] = (prefix, str(data))
    try:
        server.start()
        yield server
    finally:
        subprocess.run(
            [*prefix, _postgres_bin("pg_ctl"), "-D", str(data), "stop", "-m", "immediate"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """The session's PostgreSQL, shared by every test that needs one (a database each)."""
    with postgres_cluster() as server:
        yield server


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[Postgres]:
    """A cluster of the module's own, for tests that stop and restart the server."""
    with postgres_cluster() as server:
        yield server


@pytest.fixture
def postgres_database(postgres_server: Postgres) -> Iterator[str]:
    """A fresh, empty database for one test; its SQLAlchemy URL."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


# -- S3 (moto) -------------------------------------------------------------------------------
@dataclass
class S3:
    endpoint: str

    def environment(self) -> dict[str, str]:
        """What a client process needs to reach this endpoint with the standard variables."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
        }

    def create_bucket(self) -> str:
        import boto3

        name = f"stockcast-{uuid.uuid4().hex[:10]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    binary = _required(binary, "moto[server] (Python, in requirements-dev.lock)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: _http_ok(f"{endpoint}/moto-api/"), "moto_server", process)
    yield S3(endpoint)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_environment(s3_server: S3, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[S3, str]]:
    """The standard AWS variables pointed at the local server, and a fresh bucket."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    yield s3_server, s3_server.create_bucket()


# -- Redis -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis-server`` on a free loopback port, no persistence; its redis:// URL."""
    binary = _required(shutil.which("redis-server"), "redis-server")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(answers, "redis-server", process)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


# -- ClickHouse ----------------------------------------------------------------------------------
# Debian's clickhouse-server (18.16, the one a machine without a registry can install) run in
# the foreground on loopback ports, its data in a temporary folder. What 18.16 needs in one file.
CLICKHOUSE_CONFIG = """<yandex>
    <logger><console>1</console><level>warning</level></logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <path>{path}/</path>
    <profiles><default/></profiles>
    <users><default><password/><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default/></quotas>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
"""


@pytest.fixture(scope="session")
def clickhouse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ClickHouse server on 127.0.0.1; its HTTP URL (``http://127.0.0.1:<port>``)."""
    binary = _required(
        shutil.which("clickhouse-server") or shutil.which("clickhouse-server", path="/usr/sbin"),
        "clickhouse-server",
    )
    folder = tmp_path_factory.mktemp("clickhouse")
    http_port, tcp_port = free_port(), free_port()
    config = folder / "config.xml"
    config.write_text(CLICKHOUSE_CONFIG.format(http_port=http_port, tcp_port=tcp_port, path=folder / "data"))
    process = subprocess.Popen(
        [binary, f"--config-file={config}"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "log").open("w"),
    )
    url = f"http://127.0.0.1:{http_port}"
    wait_until(lambda: _http_ok(f"{url}/ping"), f"clickhouse-server (log: {folder / 'log'})", process)
    yield url
    process.terminate()
    process.wait(timeout=30)


# -- MLflow server ---------------------------------------------------------------------------
@dataclass
class MlflowServer:
    url: str
    artifact_root: str


@pytest.fixture(scope="session")
def mlflow_server(
    postgres_server: Postgres, s3_server: S3, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """``mlflow server`` with its backend on the PostgreSQL above and artifacts on the S3 above
    (proxied: clients send artifacts through the server)."""
    database = postgres_server.create_database()
    bucket = s3_server.create_bucket()
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    environment = {
        **os.environ,
        **s3_server.environment(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--backend-store-uri",
                postgres_server.url(database),
                "--artifacts-destination",
                f"s3://{bucket}/mlflow",
                "--allowed-hosts",
                f"127.0.0.1:{port},localhost:{port}",
            ],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _http_ok(f"{url}/health"), f"mlflow server (log: {log})", process, seconds=120)
    yield MlflowServer(url, f"s3://{bucket}/mlflow")
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# -- one suite, each backend -----------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on the embedded defaults and once with the relational store and the
    MLflow backend on PostgreSQL, chosen by settings (environment) alone."""
    if request.param == "postgresql":
        server: Postgres = request.getfixturevalue("postgres_server")
        store, tracking = server.create_database(), server.create_database()
        monkeypatch.setenv("STOCKCAST_DATABASE_URL", server.url(store))
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url(tracking))
        request.addfinalizer(lambda: [server.drop_database(name) for name in (store, tracking)])
    return str(request.param)


@pytest.fixture
def migrated_store(backend: str) -> Iterator[object]:
    """The relational store of the backend under test, migrated to the head revision."""
    from stockcast.settings import load_settings
    from stockcast.store.database import Store

    store = Store(load_settings().resolved_database_url)
    store.upgrade()
    yield store
    store.dispose()
