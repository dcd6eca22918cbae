"""The review pages: plain words from the copy, clients only by code, filters, paging, charts, headers."""

from __future__ import annotations

import re

import pytest

from plugin.delivery import copy
from plugin.review import charts
from tests.review_world import build_world
from tests.test_review_access import sign_in


@pytest.fixture
def world(rt):  # type: ignore[no-untyped-def]
    return build_world(rt)


@pytest.fixture
def admin_client(world, client):  # type: ignore[no-untyped-def]
    sign_in(client, world.tokens["admin"])
    return client


def test_the_explanation_is_in_plain_words_with_the_client_as_a_code(world, admin_client) -> None:
    api = admin_client.get("/api/v1/suggestions?decision=suggest&limit=200").get_json()["items"]
    item = next(i for i in api if i["client"])
    page = admin_client.get(f"/review/suggestions/{item['id']}").get_data(as_text=True)
    for key in ("review.decisions.suggest", "review.suggestion.why", "review.suggestion.conditions", "review.suggestion.facts"):
        assert copy.text(key) in page
    assert item["client"] in page
    assert not re.search(r"P-T-\d+", page)  # never the EHR patient id


def test_no_page_names_a_client_other_than_by_code(world, admin_client) -> None:
    for path in ("/review/", "/review/charts", "/review/therapists", "/review/therapists/T-100"):
        assert not re.search(r"P-T-\d+", admin_client.get(path).get_data(as_text=True)), path


def test_the_csv_link_carries_the_filters(world, admin_client) -> None:
    page = admin_client.get("/review/?decision=hold&from=2020-01-01").get_data(as_text=True)
    link = re.search(r'href="(/api/v1/suggestions.csv[^"]*)"', page).group(1).replace("&amp;", "&")
    assert "decision=hold" in link and "from=2020-01-01T00:00:00" in link
    assert admin_client.get(link).status_code == 200


def test_the_log_pages_on_to_older_suggestions(world, admin_client) -> None:
    page = admin_client.get("/review/").get_data(as_text=True)
    older = re.search(r'href="([^"]*cursor=[^"]*)" rel="next"', page).group(1).replace("&amp;", "&")
    second = admin_client.get(older).get_data(as_text=True)
    first_ids = set(re.findall(r"/review/suggestions/(\d+)", page))
    assert first_ids and first_ids.isdisjoint(re.findall(r"/review/suggestions/(\d+)", second))


def test_a_filter_it_cannot_read_is_named_and_left_out(world, admin_client) -> None:
    response = admin_client.get("/review/?from=not-a-date&decision=hold")
    assert response.status_code == 200
    assert copy.text("review.log.bad_filters") in response.get_data(as_text=True)


def test_the_charts_are_svg_with_a_title_and_a_table_beside_them(world, admin_client) -> None:
    page = admin_client.get("/review/charts").get_data(as_text=True)
    assert page.count('<svg class="chart"') >= 3
    assert 'role="img"' in page and "<title id=" in page and "<table>" in page
    assert "<script" not in page  # no JavaScript needed


def test_pages_are_private_and_not_framable(world, admin_client) -> None:
    response = admin_client.get("/review/")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_pages_have_landmarks_and_labelled_fields(world, admin_client) -> None:
    page = admin_client.get("/review/").get_data(as_text=True)
    assert '<main id="main"' in page and 'role="banner"' in page and "<nav" in page and 'lang="en"' in page
    for field_id in re.findall(r'<(?:select|input) id="([^"]+)"', page):
        assert f'for="{field_id}"' in page


def test_a_chart_escapes_its_text() -> None:
    svg = charts.bar_chart([{"week": "2026-W01", "n": 3}], [charts.Series("n", "<b>")], title="a & b", description="d", chart_id="c")
    assert "<b>" not in svg and "a &amp; b" in svg
