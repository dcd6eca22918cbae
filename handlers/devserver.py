"""``tend dev``: everything on one machine with embedded defaults.

Starts a private ``redis-server`` on a free port when ``TEND_REDIS_URL`` does
not answer, runs migrations, makes the ``demo`` clinic, then runs the web
server and a worker with the scheduler as child processes. Ctrl-C stops all of
them, the private Redis included.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import click
from redis import Redis
from redis.exceptions import RedisError

from plugin import admin, config
from plugin.runtime import Runtime
from plugin.store.migrate import upgrade

DEMO_CLINIC = "demo"
INSTALL_REDIS = "redis-server is not installed and TEND_REDIS_URL does not answer: install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis) or set TEND_REDIS_URL"


def redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise config.ConfigError(INSTALL_REDIS)
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tend-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches Tend's processes first; Redis stops after them
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if redis_answers(url):
            return process, url, workdir
        time.sleep(0.05)
    process.kill()
    raise config.ConfigError(f"the private redis-server did not start on port {port}")


def ensure_demo_clinic(rt: Runtime) -> dict[str, str]:
    """The demo clinic's details, kept in the instance folder for ``tend demo``."""
    path = rt.settings.instance_path / "demo-clinic.json"
    if path.exists():
        return json.loads(path.read_text())
    created = admin.create_clinic(rt.db, rt.box, "Demo clinic", DEMO_CLINIC)
    path.parent.mkdir(parents=True, exist_ok=True)  # absent when the keys come from the environment
    details = {"clinic_id": created.clinic_id, "webhook_path": created.webhook_path, "webhook_secret": created.webhook_secret, "fhir_token": created.fhir_token}
    path.write_text(json.dumps(details, indent=2))
    path.chmod(0o600)
    return details


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_dev(host: str, port: int) -> int:
    settings = config.load()
    env = dict(os.environ, TEND_DEV="1", PYTHONUNBUFFERED="1")
    env.setdefault("TEND_INSTANCE_PATH", str(settings.instance_path))
    processes: list[subprocess.Popen[bytes]] = []
    redis_process, redis_dir = None, ""
    if not redis_answers(settings.redis_url):
        redis_process, url, redis_dir = start_private_redis()
        env["TEND_REDIS_URL"] = url
        click.echo(f"started a private redis-server at {url}")
    settings = config.load(env)
    rt = Runtime.build(settings)
    upgrade(rt.db)
    demo = ensure_demo_clinic(rt)
    metrics_dir = settings.instance_path / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    click.echo(f"Tend is running at http://{host}:{port}  (database: {settings.database_url})")
    click.echo(f"demo clinic webhook: http://{host}:{port}{demo['webhook_path']}  secret: {demo['webhook_secret']}")
    click.echo(f"delivery: {settings.delivery_channel}" + ("" if settings.slack_bot_token else " (set TEND_SLACK_BOT_TOKEN for Slack)"))
    click.echo("send a realistic clinic day with `tend demo` in another terminal; Ctrl-C stops everything")
    tend = [sys.executable, "-m", "handlers.cli"]
    processes.append(subprocess.Popen([*tend, "web", "--dev", "--host", host, "--port", str(port)], env=env))
    processes.append(subprocess.Popen([*tend, "worker"], env=env))
    if settings.slack_app_token:  # Socket Mode: Slack reaches this machine without a public URL
        processes.append(subprocess.Popen([sys.executable, "-m", "handlers.slack"], env=env))
        click.echo("Slack: Socket Mode (TEND_SLACK_APP_TOKEN)")

    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    status = 0
    try:
        while not stopping:
            for process in processes:
                if process.poll() is not None:
                    click.echo(f"a Tend process exited with status {process.returncode}; stopping", err=True)
                    status = process.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        _stop(processes)
        if redis_process is not None:
            _stop([redis_process])
            shutil.rmtree(redis_dir, ignore_errors=True)
        click.echo("stopped")
    return status
