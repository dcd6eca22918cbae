"""The review's pages (``/review``): the log with filters, one explanation, weekly charts,
therapists, and the access log. Server-rendered Jinja, usable without JavaScript; the
charts are SVG drawn on the server. Every view is written to the access log.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any

from flask import Blueprint, render_template, request, url_for
from markupsafe import Markup

from handlers.review_auth import audit, current_user, page_context, runtime, say, secure_headers, signed_in
from plugin.review import access, charts, queries
from schemas import review as wire

bp = Blueprint("review", __name__, url_prefix="/review", template_folder="templates", static_folder="static")
bp.context_processor(page_context)

CHART_SERIES = ("suggested", "delivered", "helpful", "held")
bp.after_request(secure_headers)


def _not_found() -> Any:
    return render_template("review/error.html", title=say("errors.not_found_title"), message=say("errors.not_found")), 404


def _log_filters() -> tuple[queries.Filters, dict[str, str], list[str], str | None]:
    """The log form's filters, the values to show back in the form, and the fields left out."""
    raw = {k: v for k, v in request.args.items() if v != ""}
    schema = wire.LogForm()
    bad = sorted(schema.validate(raw))  # keyed by the form's names ("from", "to", ...)
    data = schema.load({k: v for k, v in raw.items() if k not in bad})
    start = datetime.combine(data["start"], time.min, tzinfo=timezone.utc) if data.get("start") else None
    end = None
    if data.get("end"):
        try:
            end = datetime.combine(data["end"] + timedelta(days=1), time.min, tzinfo=timezone.utc)
        except OverflowError:
            bad.append("to")
    filters = queries.Filters.from_mapping({**{k: data.get(k) for k in ("therapist", "rule", "decision", "status", "feedback")}, "start": start, "end": end})
    shown = {k: v for k, v in raw.items() if k in ("therapist", "rule", "decision", "status", "feedback", "from", "to") and k not in bad}
    return filters, shown, bad, data.get("cursor")


def _api_params(filters: queries.Filters) -> dict[str, str]:
    params = {k: v for k, v in filters.as_params().items() if k not in ("start", "end")}
    if filters.start:
        params["from"] = filters.start.isoformat()
    if filters.end:
        params["to"] = filters.end.isoformat()
    return params


@bp.get("/")
@signed_in
def log() -> Any:
    user = current_user()
    filters, shown, bad, cursor = _log_filters()
    audit(user, "page.log", {**filters.as_params(), **({"cursor": cursor} if cursor else {})})
    with runtime().db.session() as db:
        try:
            page = queries.list_suggestions(db, user, filters, cursor=cursor)
        except queries.NotFound:
            return _not_found()
        except queries.BadCursor:
            page = queries.list_suggestions(db, user, filters)
        therapists = queries.visible_therapists(db, user)
        rules = queries.rules_seen(db, user)
    older = url_for("review.log", **shown, cursor=page.next_cursor) if page.next_cursor else None
    return render_template(
        "review/log.html",
        page=page,
        shown=shown,
        bad=bad,
        therapists=therapists,
        rules=rules,
        kinds=queries.KINDS,
        statuses=_catalogue_keys("statuses"),
        feedback_values=_catalogue_keys("feedback"),
        csv_url=url_for("review_api.export_csv", **_api_params(filters)),
        older=older,
        paged=bool(cursor),
        newest=url_for("review.log", **shown),
    )


def _catalogue_keys(section: str) -> list[str]:
    from plugin.delivery import copy

    return list(copy.entry(f"review.{section}"))


@bp.get("/suggestions/<int:suggestion_id>")
@signed_in
def suggestion(suggestion_id: int) -> Any:
    user = current_user()
    audit(user, "page.suggestion", {"id": suggestion_id})
    with runtime().db.session() as db:
        try:
            item = queries.get_suggestion(db, user, suggestion_id)
        except queries.NotFound:
            return _not_found()
    return render_template("review/suggestion.html", s=item, told=_told(item["rule"]))


def _told(rule_id: str) -> str | None:
    """The one line the therapist read about why (``why.<rule id>``), when the catalogue has it."""
    from plugin.delivery import copy

    try:
        return copy.text(f"why.{rule_id}")
    except copy.MissingCopy:
        return None


def _charts(rows: list[dict[str, Any]], by: str, prefix: str, filters: queries.Filters) -> list[dict[str, Any]]:
    series = [charts.Series(key, say(f"counts.{key}")) for key in CHART_SERIES]
    all_weeks = queries.weeks_in(filters.start, filters.end) if filters.start else None
    out = []
    for n, (name, weeks) in enumerate(queries.weekly_series(rows, by, all_weeks).items()):
        svg = charts.bar_chart(weeks, series, title=name, description=say("charts.chart_description"), chart_id=f"{prefix}-{n}")
        out.append({"name": name, "svg": Markup(svg), "weeks": weeks, "id": f"{prefix}-{n}"})
    return out


@bp.get("/charts")
@signed_in
def weekly_charts() -> Any:
    user = current_user()
    filters = queries.stats_range(queries.Filters())
    audit(user, "page.charts", filters.as_params())
    with runtime().db.session() as db:
        rows = queries.stats(db, user, filters)
        names = dict(queries.visible_therapists(db, user))
    return render_template(
        "review/charts.html",
        by_rule=_charts(rows, "rule", "rule", filters),
        by_therapist=_charts(rows, "therapist", "therapist", filters),
        names=names,
        counts=queries.STATS_COUNTS,
    )


@bp.get("/therapists")
@signed_in
def therapists() -> Any:
    user = current_user()
    audit(user, "page.therapists", {})
    with runtime().db.session() as db:
        overview = queries.therapists_overview(db, user)
    return render_template("review/therapists.html", overview=overview)


@bp.get("/therapists/<ehr_id>")
@signed_in
def therapist(ehr_id: str) -> Any:
    user = current_user()
    audit(user, "page.therapist", {"therapist": ehr_id})
    with runtime().db.session() as db:
        try:
            who = queries.visible_therapist(db, user, ehr_id)
        except queries.NotFound:
            return _not_found()
        filters = queries.stats_range(queries.Filters(therapist=ehr_id))
        rows = queries.stats(db, user, filters)
        recent = queries.list_suggestions(db, user, queries.Filters(therapist=ehr_id), limit=10)
    return render_template("review/therapist.html", who=who, by_rule=_charts(rows, "rule", "t-rule", filters), recent=recent, counts=queries.STATS_COUNTS)


@bp.get("/access-log")
@signed_in
def access_log() -> Any:
    user = current_user()
    cursor = request.args.get("cursor") or None
    audit(user, "page.access_log", {"cursor": cursor} if cursor else {})
    if not access.can_read_access_log(user):
        return render_template("review/error.html", title=say("errors.forbidden_title"), message=say("errors.forbidden")), 403
    with runtime().db.session() as db:
        try:
            page = queries.access_log(db, user, cursor=cursor)
        except queries.BadCursor:
            page = queries.access_log(db, user)
    return render_template("review/access_log.html", page=page, older=url_for("review.access_log", cursor=page.next_cursor) if page.next_cursor else None)


