"""Who sees what: the role-scoping matrix over every review endpoint, sign-in, sessions, CSRF, audit."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DatabaseError

from plugin.review import access
from plugin.store.models import AccessLog, Suggestion, User
from tests.review_world import THERAPISTS, USERS, add_private_message, build_world

ROLES = tuple(USERS)
ALL_THERAPISTS = {t for therapists in THERAPISTS.values() for t in therapists}


@pytest.fixture
def world(rt):  # type: ignore[no-untyped-def]
    return build_world(rt)


def sign_in(client, token: str):  # type: ignore[no-untyped-def]
    page = client.get("/review/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/review/sign-in", data={"csrf_token": csrf, "token": token, "next": ""})


def csrf_of(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/review/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


# --- the matrix: every role x every API endpoint -------------------------------------------


@pytest.mark.parametrize("who", ROLES)
def test_the_list_shows_exactly_the_therapists_in_scope(world, client, who) -> None:
    body = client.get("/api/v1/suggestions?limit=200", headers=world.headers(who)).get_json()
    assert {item["therapist"] for item in body["items"]} == world.visible_to(who)


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("therapist", sorted(ALL_THERAPISTS))
def test_one_suggestion_is_readable_only_in_scope_else_404(world, client, who, therapist) -> None:
    suggestion_id = world.suggestion_ids[therapist][0]
    response = client.get(f"/api/v1/suggestions/{suggestion_id}", headers=world.headers(who))
    assert response.status_code == (200 if therapist in world.visible_to(who) else 404)
    if response.status_code == 404:
        assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("who", ROLES)
@pytest.mark.parametrize("therapist", sorted(ALL_THERAPISTS))
def test_filtering_by_a_therapist_out_of_scope_is_404(world, client, who, therapist) -> None:
    for path in ("/api/v1/suggestions", "/api/v1/suggestions.csv", "/api/v1/stats"):
        response = client.get(f"{path}?therapist={therapist}", headers=world.headers(who))
        assert response.status_code == (200 if therapist in world.visible_to(who) else 404), path


@pytest.mark.parametrize("who", ROLES)
def test_the_csv_holds_exactly_the_therapists_in_scope(world, client, who) -> None:
    text = client.get("/api/v1/suggestions.csv", headers=world.headers(who)).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["therapist"] for row in rows} == world.visible_to(who)


@pytest.mark.parametrize("who", ROLES)
def test_stats_count_only_the_therapists_in_scope(world, client, who) -> None:
    body = client.get("/api/v1/stats", headers=world.headers(who)).get_json()
    assert {row["therapist"] for row in body["rows"]} == world.visible_to(who)


@pytest.mark.parametrize("who", ROLES)
def test_only_admins_read_the_access_log_and_only_their_clinics(world, client, who) -> None:
    client.get("/api/v1/suggestions", headers=world.headers("other_admin"))  # a read in Lakeside
    client.get("/api/v1/suggestions", headers=world.headers("supervisor"))  # a read in Riverside
    response = client.get("/api/v1/access-log?limit=200", headers=world.headers(who))
    if USERS[who][2] != "admin":
        assert response.status_code == 403
        return
    assert response.status_code == 200
    clinic = USERS[who][0]
    own_emails = {email for (c, email, _, _) in USERS.values() if c == clinic}
    assert {entry["user"] for entry in response.get_json()["items"]} <= own_emails


@pytest.mark.parametrize(
    "path", ["/api/v1/suggestions", "/api/v1/suggestions/1", "/api/v1/suggestions.csv", "/api/v1/stats", "/api/v1/access-log"]
)
def test_without_a_token_every_endpoint_is_401_problem_json(world, client, path) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer tend_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer", "tend_x"])
def test_a_wrong_or_malformed_authorization_header_is_401(world, client, header) -> None:
    assert client.get("/api/v1/suggestions", headers={"Authorization": header}).status_code == 401


# --- the matrix: every role x every page ----------------------------------------------------


@pytest.mark.parametrize("who", ROLES)
def test_pages_show_only_the_therapists_in_scope(world, app, who) -> None:
    client = app.test_client()
    assert sign_in(client, world.tokens[who]).status_code == 303
    visible = world.visible_to(who)
    for therapist in sorted(ALL_THERAPISTS):
        expected = 200 if therapist in visible else 404
        assert client.get(f"/review/therapists/{therapist}").status_code == expected
        assert client.get(f"/review/?therapist={therapist}").status_code == expected
        assert client.get(f"/review/suggestions/{world.suggestion_ids[therapist][0]}").status_code == expected
    names = {THERAPISTS[c][t][0] for c in THERAPISTS for t in THERAPISTS[c]}
    visible_names = {THERAPISTS[USERS[who][0]][t][0] for t in visible}
    for path in ("/review/", "/review/charts", "/review/therapists"):
        page = client.get(path).get_data(as_text=True)
        shown = {n for n in names if n in page}
        assert shown == visible_names, path
    assert client.get("/review/access-log").status_code == (200 if USERS[who][2] == "admin" else 403)


@pytest.mark.parametrize("path", ["/review/", "/review/charts", "/review/therapists", "/review/therapists/T-100", "/review/suggestions/1", "/review/access-log"])
def test_pages_send_strangers_to_the_sign_in_form(world, client, path) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert "/review/sign-in" in response.headers["Location"]


def test_the_session_cookie_also_reads_the_api(world, client) -> None:
    sign_in(client, world.tokens["supervisor"])
    body = client.get("/api/v1/suggestions?limit=200").get_json()
    assert {item["therapist"] for item in body["items"]} == world.visible_to("supervisor")


# --- scoping as where-clauses ---------------------------------------------------------------


def test_scoping_clauses_name_the_clinic_and_the_supervisor(world) -> None:
    with world.rt.db.session() as session:
        supervisor = session.scalar(select(User).where(User.email == "sup@riverside.example"))
    sql = " ".join(str(c.compile(compile_kwargs={"literal_binds": True})) for c in access.suggestion_scope(supervisor))
    assert "'riverside'" in sql and "supervisor_ehr_id = 'S-1'" in sql


def test_an_unknown_role_sees_nothing(world) -> None:
    class Stranger:
        clinic_id, role, therapist_ehr_id = "riverside", "auditor", None

    with world.rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suggestion).where(*access.suggestion_scope(Stranger()))) == 0


# --- sign-in, session cookie, CSRF, sign-out ---------------------------------------------------


def test_sign_in_sets_an_httponly_samesite_lax_cookie(world, client) -> None:
    response = sign_in(client, world.tokens["admin"])
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_the_cookie_is_secure_when_the_request_came_over_https(world, client) -> None:
    page = client.get("/review/sign-in", base_url="https://localhost").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/review/sign-in", data={"csrf_token": csrf, "token": world.tokens["admin"]}, base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path, sqlite_url, redis_server) -> None:
    from handlers.app import create_app
    from plugin import config
    from plugin.runtime import Runtime
    from plugin.store.migrate import upgrade
    from tests.conftest import make_env

    rt = Runtime.build(config.load(make_env(tmp_path, sqlite_url, TEND_PUBLIC_URL="https://tend.example")))
    upgrade(rt.db)
    app = create_app(runtime=rt)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    rt.db.dispose()


def test_a_wrong_token_is_refused_with_a_message(world, client) -> None:
    response = sign_in(client, "tend_wrong")
    assert response.status_code == 401
    assert "not recognised" in response.get_data(as_text=True)


def test_sign_in_without_the_csrf_token_is_refused(world, client) -> None:
    client.get("/review/sign-in")
    response = client.post("/review/sign-in", data={"token": world.tokens["admin"]})
    assert response.status_code == 400
    assert client.get("/review/").status_code == 302


def test_sign_out_needs_the_csrf_token(world, client) -> None:
    sign_in(client, world.tokens["admin"])
    assert client.post("/review/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/review/").status_code == 200
    assert client.post("/review/sign-out", data={"csrf_token": csrf_of(client)}).status_code == 303
    assert client.get("/review/").status_code == 302


def test_sign_in_never_redirects_to_another_site(world, client) -> None:
    page = client.get("/review/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/review/sign-in", data={"csrf_token": csrf, "token": world.tokens["admin"], "next": "//evil.example/review"})
    assert response.headers["Location"] == "/review/"


def test_a_new_token_ends_the_old_sessions(world, client) -> None:
    sign_in(client, world.tokens["admin"])
    with world.rt.db.session() as session:
        session.execute(update(User).where(User.email == "admin@riverside.example").values(token_hash="0" * 64))
    assert client.get("/review/").status_code == 302


# --- audit ------------------------------------------------------------------------------------


def _log(world) -> list[AccessLog]:  # type: ignore[no-untyped-def]
    with world.rt.db.session() as session:
        return list(session.scalars(select(AccessLog).order_by(AccessLog.id)))


def test_every_api_read_is_logged_with_its_filters(world, client) -> None:
    before = len(_log(world))
    client.get("/api/v1/suggestions?rule=client.suggest.next-step&decision=suggest", headers=world.headers("supervisor"))
    client.get(f"/api/v1/suggestions/{world.suggestion_ids['T-100'][0]}", headers=world.headers("supervisor"))
    client.get("/api/v1/suggestions.csv?status=delivered", headers=world.headers("supervisor"))
    client.get("/api/v1/stats", headers=world.headers("supervisor"))
    entries = _log(world)[before:]
    assert [e.what for e in entries] == ["api.suggestions.list", "api.suggestions.get", "api.suggestions.csv", "api.stats"]
    assert entries[0].params == {"rule": "client.suggest.next-step", "decision": "suggest"}
    assert entries[1].params == {"id": world.suggestion_ids["T-100"][0]}
    assert entries[2].params == {"status": "delivered"}
    assert all(e.clinic_id == "riverside" and e.at is not None for e in entries)


def test_every_page_view_is_logged(world, client) -> None:
    sign_in(client, world.tokens["admin"])
    before = len(_log(world))
    for path in ("/review/?decision=hold", f"/review/suggestions/{world.suggestion_ids['T-200'][0]}", "/review/charts", "/review/therapists", "/review/therapists/T-100", "/review/access-log"):
        client.get(path)
    assert [e.what for e in _log(world)[before:]] == ["page.log", "page.suggestion", "page.charts", "page.therapists", "page.therapist", "page.access_log"]


def test_a_refused_read_is_logged_too(world, client) -> None:
    client.get(f"/api/v1/suggestions/{world.suggestion_ids['T-900'][0]}", headers=world.headers("admin"))
    assert _log(world)[-1].params == {"id": world.suggestion_ids["T-900"][0]}


def test_the_access_log_refuses_updates_and_deletes(world, client) -> None:
    client.get("/api/v1/stats", headers=world.headers("admin"))
    with pytest.raises(DatabaseError):
        with world.rt.db.session() as session:
            session.execute(update(AccessLog).values(what="tampered"))
    with pytest.raises(DatabaseError):
        with world.rt.db.session() as session:
            session.execute(delete(AccessLog))
    assert all(e.what != "tampered" for e in _log(world))


# --- private: what a therapist writes to Tend, and the replies ---------------------------------

PRIVATE_VIEWERS = ("therapist", "supervisor", "admin")  # Rowan (T-100) herself, her supervisor, her clinic's admin


@pytest.fixture
def private_ids(world) -> list[int]:  # type: ignore[no-untyped-def]
    ids = add_private_message(world.rt, "riverside", "T-100")
    assert ids
    return ids


def test_decisions_on_a_therapists_own_message_are_private_and_keep_her_signals(world, private_ids) -> None:
    with world.rt.db.session() as session:
        rows = list(session.scalars(select(Suggestion).where(Suggestion.id.in_(private_ids))))
        others = session.scalar(select(func.count()).select_from(Suggestion).where(Suggestion.private.is_(True), Suggestion.id.not_in(private_ids)))
    assert rows and all(row.private for row in rows)
    assert all("stress" in row.explanation["facts"]["therapist"]["signals"] for row in rows)
    assert others == 0


@pytest.mark.parametrize("who", PRIVATE_VIEWERS)
def test_a_private_suggestion_is_readable_by_its_therapist_only_else_404(world, client, private_ids, who) -> None:
    for suggestion_id in private_ids:
        response = client.get(f"/api/v1/suggestions/{suggestion_id}", headers=world.headers(who))
        assert response.status_code == (200 if who == "therapist" else 404)
    if who == "therapist":
        facts = {f["name"]: f["value"] for f in response.get_json()["facts"]}
        assert "stress" in facts["therapist.signals"]


@pytest.mark.parametrize("who", PRIVATE_VIEWERS)
def test_a_private_suggestion_is_listed_for_its_therapist_only(world, client, private_ids, who) -> None:
    listed = {item["id"] for item in client.get("/api/v1/suggestions?limit=200&therapist=T-100", headers=world.headers(who)).get_json()["items"]}
    text = client.get("/api/v1/suggestions.csv?therapist=T-100", headers=world.headers(who)).get_data(as_text=True)
    in_csv = {int(row["id"]) for row in csv.DictReader(io.StringIO(text))}
    expected = set(private_ids) if who == "therapist" else set()
    assert listed & set(private_ids) == expected
    assert in_csv & set(private_ids) == expected


@pytest.mark.parametrize("who", PRIVATE_VIEWERS)
def test_a_private_suggestion_is_counted_in_stats_for_its_therapist_only(world, client, who) -> None:
    def totals() -> dict[str, int]:
        rows = client.get("/api/v1/stats?therapist=T-100", headers=world.headers(who)).get_json()["rows"]
        return {name: sum(row[name] for row in rows) for name in ("suggested", "held", "deferred", "suppressed")}

    before = totals()
    add_private_message(world.rt, "riverside", "T-100")
    after = totals()
    assert (after != before) == (who == "therapist")


@pytest.mark.parametrize("who", PRIVATE_VIEWERS)
def test_a_private_suggestion_shows_on_no_page_but_its_therapists(world, app, private_ids, who) -> None:
    client = app.test_client()
    assert sign_in(client, world.tokens[who]).status_code == 303
    for suggestion_id in private_ids:
        assert client.get(f"/review/suggestions/{suggestion_id}").status_code == (200 if who == "therapist" else 404)
    page = client.get("/review/?therapist=T-100").get_data(as_text=True)
    assert any(f"/review/suggestions/{i}" in page for i in private_ids) == (who == "therapist")


def test_a_private_suggestion_does_not_move_the_last_suggestion_time_supervisors_see(world) -> None:
    from plugin.review import queries
    from tests.review_world import NOW

    def last_seen() -> dict[str, object]:
        with world.rt.db.session() as session:
            viewers = {u.role: u for u in session.scalars(select(User).where(User.clinic_id == "riverside"))}
            return {role: {row["therapist"]: row["last_suggestion_at"] for row in queries.therapists_overview(session, viewer)}["T-100"] for role, viewer in viewers.items()}

    before = last_seen()
    add_private_message(world.rt, "riverside", "T-100", at=NOW + timedelta(minutes=5))
    after = last_seen()
    assert after["supervisor"] == before["supervisor"] and after["admin"] == before["admin"]
    assert after["therapist"] > before["therapist"]
