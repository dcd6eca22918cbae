"""Operations endpoints: liveness, readiness with the failing part named, metrics."""

from __future__ import annotations

from plugin.queue import JobQueue


def test_healthz_answers_without_dependencies(client) -> None:
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_names_the_missing_worker(client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert "worker" in response.json["detail"]


def test_readyz_is_ready_with_a_beating_worker_and_a_scheduler(client, rt) -> None:
    rt.queue.beat("test-worker")
    rt.redis.set(f"rq:scheduler-lock:{rt.queue.rq.name}", "test-worker")
    response = client.get("/readyz")
    assert response.status_code == 200
    assert set(response.json["checks"].values()) == {"ok"}


def test_readyz_names_redis_when_it_is_down(client, rt) -> None:
    from redis import Redis

    rt.redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    rt.queue = JobQueue(rt.redis, "tend-test")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "redis" in response.json["detail"]


def test_metrics_count_accepted_events_by_source(client, post_event) -> None:
    post_event("therapist.upserted", {"therapist_id": "T-1"})
    body = client.get("/metrics").get_data(as_text=True)
    assert 'tend_events_total{outcome="accepted",source="ehr"}' in body
    assert "tend_queue_depth" in body


def test_every_response_carries_a_request_id(client) -> None:
    assert len(client.get("/healthz").headers["X-Request-Id"]) == 32


def test_an_unknown_path_is_problem_json(client) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
