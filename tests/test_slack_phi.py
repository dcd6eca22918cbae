"""No Slack payload Tend's Slack side can produce carries PHI or event text.

Every kind of payload (the /tend answers, the App Home view, button updates for every
message kind, DM replies) goes through a guarded builder; here each is built and checked
again, and hypothesis feeds adversarial content in where content can enter: a DM's text,
a /tend argument, and EHR fields that end up in the facts behind a message.
"""

from __future__ import annotations

import json
import string
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin import home, tend_command, therapist_messages
from plugin.delivery.blocks import Anchor, Audience, Kind, Outgoing, recorded
from plugin.delivery.phi_guard import check_payload
from plugin.store.models import Event, Therapist
from tests.slack_harness import USER, TendSlack, tend_slack  # noqa: F401

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PHI = st.sampled_from(
    [
        "Jane Q. Doe",
        "MRN 00482913",
        "DOB 1987-03-14",
        "jane.doe@example.org",
        "(415) 555-0134",
        "123-45-6789",
        "F33.1 major depressive disorder",
        "quokka-7d41e09b",
    ]
)
NOISE = st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?'\"&<>-_\n@#/()", max_size=120)


def adversarial() -> st.SearchStrategy[tuple[str, str]]:
    """(the whole text, the PHI inside it): PHI wrapped in stress words and noise."""
    return st.tuples(NOISE, PHI, NOISE, st.sampled_from(["I am overwhelmed", "I messed up", "", "I want to die"])).map(
        lambda parts: (f"{parts[3]} {parts[0]} {parts[1]} {parts[2]}", parts[1])
    )


def every_payload(h: TendSlack) -> list[dict]:
    now = datetime.now(timezone.utc)
    with h.rt.db.session() as session:
        therapist_id = session.scalars(select(Therapist.id)).one()
    payloads = [tend_command.answer(h.rt.db, therapist_id, text, now) for text in ("help", "break", "stats", "pause 2h", "pause today", "pause off", "hours 08:00-17:00", "limit 3", "nonsense")]
    payloads.append(home.view_for(h.rt.db, therapist_id, now, 3))
    kinds = [
        Outgoing(1, Kind.NUDGE, Audience.THERAPIST, "messages.overfull_day.lead", practice_id="soothing_touch_breaths", why_key="therapist.selfcare.overfull-day", source_label="Tip 5"),
        Outgoing(2, Kind.BREAK, Audience.THERAPIST, "messages.stress_reply.lead", practice_id="self_compassion_break", why_key="therapist.selfcare.stress-message"),
        Outgoing(3, Kind.SUGGEST, Audience.CLIENT, "messages.client_suggestion.lead", practice_id="ladder.1.supportive_touch", why_key="client.suggest.next-step", anchor=Anchor.before_session(30), analogy_id="friend"),
    ]
    for out in kinds:
        payloads.extend(recorded(out, feedback) for feedback in out.effective_buttons)
    return payloads


def test_every_slack_payload_passes_the_guard_and_names_no_client(tend_slack: TendSlack) -> None:
    suggestion = tend_slack.delivered_client_suggestion()
    tend_slack.slack.action("done", suggestion.id, message_ts=suggestion.slack_ts)
    forbidden = ["P-9", "N-9", "A-9", "T-100", "Dr. Rowan", "Rowan"]
    for payload in every_payload(tend_slack) + tend_slack.fake.posted:
        check_payload({k: v for k, v in payload.items() if k not in ("ts", "user", "bot_id", "channel", "thread_ts", "type", "edited")}, forbidden=forbidden)


@SETTINGS
@given(message=adversarial())
def test_adversarial_dm_text_is_never_stored_nor_sent(tend_slack: TendSlack, message: tuple[str, str]) -> None:
    text, phi = message
    with tend_slack.rt.db.session() as session:
        therapist = session.scalars(select(Therapist)).one()
        therapist.stopped_until = therapist.paused_until = None  # each example starts with nudges on
    before = len(tend_slack.fake.posted)
    therapist_messages.handle_message(
        tend_slack.rt, clinic_id=tend_slack.clinic_id, therapist_ehr_id="T-100", event_id=f"Ev{abs(hash(text))}{before}", text=text, thread_ts=None
    )
    with tend_slack.rt.db.session() as session:
        stored = json.dumps([e.data for e in session.scalars(select(Event).where(Event.source == "slack"))])
    assert phi not in stored
    assert text.strip() == "" or text not in stored
    for message_payload in tend_slack.fake.posted[before:]:
        rendered = json.dumps(message_payload)
        assert phi not in rendered
        assert phi.replace("&", "&amp;") not in rendered


@SETTINGS
@given(argument=st.tuples(NOISE, PHI).map(lambda p: f"{p[0]} {p[1]}"), verb=st.sampled_from(["", "pause", "hours", "limit", "stats", "break", "help", "tend"]))
def test_a_tend_command_never_echoes_its_argument(tend_slack: TendSlack, argument: str, verb: str) -> None:
    with tend_slack.rt.db.session() as session:
        therapist_id = session.scalars(select(Therapist.id)).one()
    payload = tend_command.answer(tend_slack.rt.db, therapist_id, f"{verb} {argument}", datetime.now(timezone.utc))
    check_payload(payload, forbidden=[argument.strip()] if len(argument.strip()) >= 2 else [])


@SETTINGS
@given(name=st.tuples(PHI, NOISE).map(lambda p: (p[0] + " " + p[1]).strip()))
def test_adversarial_ehr_fields_never_reach_the_home_view(tend_slack: TendSlack, name: str) -> None:
    tend_slack.ehr("therapist.upserted", {"therapist_id": "T-100", "slack_user_id": USER, "display_name": name[:200], "supervisor_id": name[:200]})
    with tend_slack.rt.db.session() as session:
        therapist_id = session.scalars(select(Therapist.id)).one()
    view = home.view_for(tend_slack.rt.db, therapist_id, datetime.now(timezone.utc) + timedelta(seconds=1), 3)
    check_payload(view, forbidden=[name[:200]])
