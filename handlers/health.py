"""``/healthz``, ``/readyz`` and ``/metrics`` (DESIGN §3.7)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, jsonify

from handlers.common import runtime
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from redis.exceptions import RedisError
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from plugin.runtime import Runtime
from plugin.store.models import Suggestion

bp = Blueprint("health", __name__)
HEARTBEAT_MAX_AGE = 60.0


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def _checks(rt: Runtime) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        with rt.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError as err:
        checks["database"] = f"unreachable ({type(err).__name__})"
    try:
        rt.redis.ping()
        checks["redis"] = "ok"
        age = rt.queue.last_heartbeat_age()
        checks["worker"] = "ok" if age is not None and age <= HEARTBEAT_MAX_AGE else (
            "no worker heartbeat" if age is None else f"last heartbeat {age:.0f}s ago"
        )
        checks["scheduler"] = "ok" if rt.queue.scheduler_present() else "no rq scheduler running"
    except RedisError as err:
        checks["redis"] = f"unreachable ({type(err).__name__})"
    for name, check in current_app.extensions.get("tend_ready_checks", {}).items():
        checks[name] = check()
    return checks


@bp.get("/readyz")
def readyz() -> Response | tuple[Response, int]:
    checks = _checks(runtime())
    failing = sorted(name for name, state in checks.items() if state != "ok")
    if failing:
        body = {
            "type": "https://tend.example/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "detail": "Failing: " + ", ".join(f"{name} ({checks[name]})" for name in failing),
            "checks": checks,
        }
        response = jsonify(body)
        response.mimetype = "application/problem+json"
        return response, 503
    return jsonify(status="ready", checks=checks)


class StoreCollector(Collector):
    """Gauges read at scrape time: suggestions by status, queue depth."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_status = GaugeMetricFamily("tend_suggestions", "Suggestions in the log by status", labels=["status"])
        try:
            with self.rt.db.session() as session:
                for status, count in session.execute(select(Suggestion.status, func.count()).group_by(Suggestion.status)):
                    by_status.add_metric([status], count)
        except SQLAlchemyError:
            pass
        yield by_status
        depth = GaugeMetricFamily("tend_queue_depth", "Jobs waiting or scheduled in the rq queue")
        try:
            depth.add_metric([], self.rt.queue.depth())
        except RedisError:
            pass
        yield depth


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    store = CollectorRegistry()
    store.register(StoreCollector(runtime()))
    output += generate_latest(store)
    return Response(output, mimetype=CONTENT_TYPE_LATEST)
