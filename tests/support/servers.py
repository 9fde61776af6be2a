"""A self-managed MLflow as teams run it off Databricks and Fabric: PostgreSQL (Debian's package) as the
backend store, ``mlflow server`` with artifacts proxied to an S3 API and the basic-auth app. Both run on
loopback in temporary folders and are stopped by process id."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .processes import PYTHON, free_port, kill_group, wait_for_port

# The database role's and the MLflow admin's passwords (the jobs use a user the admin creates).
DB_USER, DB_PASSWORD = "mlflow", "db-pass-7f3a"
ADMIN, ADMIN_PASSWORD = "admin", "admin-pass-5c1e"


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (``apt-get install postgresql``; not on PATH there)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    return versions[-1].parent


class Postgres:
    """One PostgreSQL cluster in a temporary folder, listening on a free loopback port only.

    PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` user (its folder is
    outside pytest's, whose parents only root may enter) and its commands run through ``runuser``.
    """

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="spark-sentiment-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.folder / "postgres.log"
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> "Postgres":
        password_file = self.folder / "password"
        password_file.write_text(DB_PASSWORD)
        if self._as_user:
            shutil.chown(self.folder, "postgres", "postgres")
            shutil.chown(password_file, "postgres", "postgres")
        data = self.folder / "data"
        init = [str(self.bin / "initdb"), "-D", str(data), "-U", DB_USER, f"--pwfile={password_file}"]
        init += ["--auth=scram-sha-256", "-E", "UTF8"]
        subprocess.run(self._as_user + init, check=True, capture_output=True, text=True)
        server = [str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port)]
        server += ["-k", str(self.folder)]  # its Unix socket in its own folder, not /var/run/postgresql
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self._as_user + server, stdout=log, stderr=log, start_new_session=True)
        wait_for_port(self.port, timeout=60)
        return self

    def url(self, database: str) -> str:
        return f"postgresql://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new database; its SQLAlchemy URL."""
        self.execute(f'CREATE DATABASE "{name}"', autocommit=True)
        return self.url(name)

    def execute(self, statement: str, database: str = "postgres", autocommit: bool = False) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=autocommit) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown; runuser passes it on to the server.
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill_group(self.proc)
        shutil.rmtree(self.folder, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on a PostgreSQL backend store, artifacts proxied to ``artifacts`` (an s3:// URI on
    ``s3_endpoint``), behind the basic-auth app (its users in a second database). Restartable on its port."""

    def __init__(self, postgres: Postgres, artifacts: str, s3_endpoint: str, folder: Path, keys: dict) -> None:
        self.postgres = postgres
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.proc: subprocess.Popen | None = None
        backend = postgres.create_database("mlflow")
        auth = folder / "basic_auth.ini"
        auth.write_text(
            "[mlflow]\n"
            "default_permission = READ\n"
            f"database_uri = {postgres.create_database('mlflow_auth')}\n"
            f"admin_username = {ADMIN}\n"
            f"admin_password = {ADMIN_PASSWORD}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        self.command = [PYTHON, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        self.command += ["--backend-store-uri", backend, "--artifacts-destination", artifacts]
        self.command += ["--app-name", "basic-auth", "--workers", "2"]
        self.env = {
            **os.environ,
            "MLFLOW_AUTH_CONFIG_PATH": str(auth),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests",
            "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
            "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": "us-east-1",
            # The server's background job runner (MLflow 3's GenAI jobs) is not used here.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            self.env.pop(name, None)
        self.starts = 0

    def start(self) -> "MlflowServer":
        self.starts += 1
        log = open(self.folder / f"server-{self.starts}.log", "w")
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_for_port(self.port, timeout=120)
        deadline = time.monotonic() + 60
        while not self.healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: {self.folder}/server-{self.starts}.log")
            time.sleep(0.3)
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def stop(self) -> None:
        """SIGTERM the server and its workers (its process group); SIGKILL what is left after 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        kill_group(self.proc)

    def crash(self) -> None:
        """SIGKILL the server and its workers: requests in flight are cut off, as when a host dies."""
        if self.proc is not None:
            kill_group(self.proc)

    def admin(self, method: str, path: str, body: dict | None = None) -> dict:
        """A REST call as the admin user (creating users, granting permissions)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.uri}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text else {}

    def create_user(self, username: str, password: str) -> None:
        self.admin("POST", "/api/2.0/mlflow/users/create", {"username": username, "password": password})
