"""The review API: pages, filters, cursors, the explanation, CSV, stats, errors; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DatabaseError

from handlers.app import create_app
from plugin.store.models import AccessLog, Event, Suggestion
from tests.review_world import NOW, build_world


@pytest.fixture
def world(rt):  # type: ignore[no-untyped-def]
    return build_world(rt)


@pytest.fixture
def any_world(rt_any_db):  # type: ignore[no-untyped-def]
    return build_world(rt_any_db)


def all_pages(client, headers, query: str = "", limit: int = 7) -> list[dict]:  # type: ignore[no-untyped-def]
    items, cursor = [], None
    while True:
        url = f"/api/v1/suggestions?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_pages_walk_the_whole_log_newest_first_without_gaps_or_repeats(any_world) -> None:
    client = create_app(runtime=any_world.rt).test_client()
    items = all_pages(client, any_world.headers("admin"))
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == sum(len(any_world.suggestion_ids[t]) for t in ("T-100", "T-200", "T-300"))
    keys = [(item["created_at"], item["id"]) for item in items]
    assert keys == sorted(keys, reverse=True)


def test_a_cursor_stays_stable_when_new_suggestions_arrive(any_world) -> None:
    client = create_app(runtime=any_world.rt).test_client()
    headers = any_world.headers("admin")
    first = client.get("/api/v1/suggestions?limit=10", headers=headers).get_json()
    expected_second = client.get(f"/api/v1/suggestions?limit=10&cursor={first['next_cursor']}", headers=headers).get_json()
    with any_world.rt.db.session() as session:  # a new suggestion arrives between the two reads
        template = session.get(Suggestion, any_world.suggestion_ids["T-100"][0])
        event = Event(clinic_id="riverside", source="test", dedupe_key="late", type="session_note.signed", occurred_at=NOW, received_at=NOW, data={}, status="evaluated")
        session.add(event)
        session.flush()
        session.add(Suggestion(**{c: getattr(template, c) for c in ("clinic_id", "therapist_id", "rule_id", "rule_version", "kind", "audience", "status", "timing_reason", "explanation")}, event_id=event.id, created_at=NOW + timedelta(seconds=1)))
    second = client.get(f"/api/v1/suggestions?limit=10&cursor={first['next_cursor']}", headers=headers).get_json()
    assert second == expected_second


def test_the_access_log_is_append_only_on_every_backend(any_world) -> None:
    client = create_app(runtime=any_world.rt).test_client()
    client.get("/api/v1/stats", headers=any_world.headers("admin"))
    with pytest.raises(DatabaseError):
        with any_world.rt.db.session() as session:
            session.execute(update(AccessLog).values(what="tampered"))


@pytest.mark.parametrize(
    ("query", "check"),
    [
        ("&therapist=T-200", lambda i: i["therapist"] == "T-200"),
        ("&rule=client.suggest.next-step", lambda i: i["rule"] == "client.suggest.next-step"),
        ("&decision=hold", lambda i: i["decision"] == "hold"),
        ("&status=delivered", lambda i: i["status"] == "delivered"),
        ("&feedback=helpful", lambda i: "helpful" in i["feedback"]),
        ("&feedback=none", lambda i: i["feedback"] == []),
    ],
)
def test_each_filter_keeps_only_matching_suggestions(world, client, query, check) -> None:
    items = all_pages(client, world.headers("admin"), query)
    assert items and all(check(i) for i in items)


def test_from_and_to_bound_the_creation_time(world, client) -> None:
    start, end = (NOW - timedelta(weeks=3)).isoformat(), (NOW - timedelta(weeks=1)).isoformat()
    items = all_pages(client, world.headers("admin"), f"&from={start.replace('+', '%2B')}&to={end.replace('+', '%2B')}")
    assert items and all(start <= i["created_at"] < end for i in items)


def test_the_explanation_has_everything_a_supervisor_needs(world, client) -> None:
    with world.rt.db.session() as session:
        suggestion_id = session.scalar(select(Suggestion.id).where(Suggestion.rule_id == "client.suggest.next-step", Suggestion.client_id.is_not(None)).order_by(Suggestion.id))
    body = client.get(f"/api/v1/suggestions/{suggestion_id}", headers=world.headers("admin")).get_json()
    assert body["rule"] == "client.suggest.next-step" and body["rule_version"] >= 1
    assert {"name": "client.signals", "value": ["self_criticism"]} in body["facts"]
    assert any(c["values"].get("client.signals") == ["self_criticism"] for c in body["conditions"])
    assert body["source"] and body["source_url"].startswith("https://")
    assert body["timing"] and body["timing_reason"]
    assert body["client"].startswith("C-")  # the random code, never the EHR id
    assert "P-T-100" not in str(body)


def test_delivery_attempts_and_feedback_are_in_the_explanation(world, client) -> None:
    items = all_pages(client, world.headers("admin"), "&feedback=helpful")
    body = client.get(f"/api/v1/suggestions/{items[0]['id']}", headers=world.headers("admin")).get_json()
    assert [a["outcome"] for a in body["attempts"]] == ["delivered"]
    assert [f["feedback"] for f in body["feedback_detail"]] == ["helpful"]


def test_the_csv_matches_the_api_row_for_row(world, client) -> None:
    headers = world.headers("supervisor")
    api = all_pages(client, headers, "&decision=nudge")
    response = client.get("/api/v1/suggestions.csv?decision=nudge", headers=headers)
    assert response.mimetype == "text/csv" and response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == len(api) > 0
    for row, item in zip(rows, api, strict=True):
        assert set(row) == set(item)
        for name, value in item.items():
            expected = ";".join(value) if isinstance(value, list) else "" if value is None else str(value)
            assert row[name] == expected, name


def test_stats_count_per_week_rule_and_therapist(world, client) -> None:
    body = client.get("/api/v1/stats?therapist=T-100", headers=world.headers("admin")).get_json()
    rows = body["rows"]
    assert {r["therapist"] for r in rows} == {"T-100"}
    api = all_pages(client, world.headers("admin"), "&therapist=T-100")
    in_range = [i for i in api if i["created_at"] >= body["from"]]
    assert sum(r["suggested"] for r in rows) == sum(i["decision"] in ("suggest", "nudge") for i in in_range)
    assert sum(r["held"] for r in rows) == sum(i["decision"] == "hold" for i in in_range)
    assert sum(r["delivered"] for r in rows) == sum(i["delivered_at"] is not None for i in in_range)
    assert sum(r["helpful"] for r in rows) == sum("helpful" in i["feedback"] for i in in_range)
    assert any(r["median_seconds_to_feedback"] is not None for r in rows)
    assert all(r["week"].startswith("20") and "-W" in r["week"] for r in rows)


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "decision=maybe", "from=yesterday", "cursor=%21%21", "status=DROP%20TABLE", "from=0001-01-01T00:00:00%2B05:00"])
def test_bad_arguments_are_422_problem_json_with_the_field(world, client, query) -> None:
    response = client.get(f"/api/v1/suggestions?{query}", headers=world.headers("admin"))
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]


def test_a_forged_cursor_is_422(world, client) -> None:
    response = client.get("/api/v1/suggestions?cursor=bm90LWEtY3Vyc29y", headers=world.headers("admin"))
    assert response.status_code == 422


@pytest.mark.parametrize("suggestion_id", [0, 2**63, 10**30])
def test_ids_out_of_range_are_404_not_500(world, client, suggestion_id) -> None:
    assert client.get(f"/api/v1/suggestions/{suggestion_id}", headers=world.headers("admin")).status_code == 404


def test_unknown_api_paths_are_problem_json(world, client) -> None:
    response = client.get("/api/v1/nothing-here", headers=world.headers("admin"))
    assert response.status_code == 404 and response.mimetype == "application/problem+json"
