"""Read a subscription notification bundle: R4 backport, R4B or R5.

The bundle is validated with ``fhir.resources`` (R5 models for a
``subscription-notification`` bundle, R4B models for a ``history`` bundle: the
R4 backport's Parameters, DocumentReference, Appointment and Communication have
the same shape in R4 and R4B). Errors name the element path and the problem,
never the value, since a value may be note text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, get_args

from marshmallow import ValidationError as SchemaError
from pydantic import ValidationError
from pydantic_core.core_schema import ErrorType

from schemas.fhir import NotificationStatusSchema

MAX_ERRORS = 20


class NotificationError(ValueError):
    """The body is not a notification Tend can read; ``errors`` are path: message lines."""

    def __init__(self, title: str, errors: list[str] | dict[str, Any] | None = None) -> None:
        super().__init__(title)
        self.title = title
        self.errors = errors or []


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    number: int
    timestamp: datetime | None
    focus: str | None  # "DocumentReference/abc", relative
    resource: Mapping[str, Any] | None  # the validated resource JSON (full-resource), else None


@dataclass(frozen=True, slots=True)
class Notification:
    version: str  # "R4" (backport Parameters) | "R4B" | "R5"
    subscription: str  # "Subscription/abc"
    topic: str | None
    status: str | None
    type: str
    events_since_start: int | None
    events: tuple[NotificationEvent, ...] = field(default_factory=tuple)

    @property
    def models(self) -> str:
        """Which ``fhir.resources`` release validates this notification's resources."""
        return "R5" if self.version == "R5" else "R4B"


def relative(reference: str | None) -> str | None:
    """``Type/id`` from a relative, absolute or versioned reference; None for urn:/contained."""
    if not reference or reference.startswith(("urn:", "#")):
        return None
    parts = [p for p in reference.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return f"{parts[-2]}/{parts[-1]}"


def reference_id(reference: str | None, resource_type: str) -> str | None:
    rel = relative(reference)
    if rel is None:
        return None
    kind, _, ident = rel.partition("/")
    return ident if kind == resource_type else None


#: pydantic's own error types; their messages describe what was expected, never the input.
_BUILTIN_ERRORS = frozenset(get_args(ErrorType)) - {"value_error", "assertion_error"}
_ELEMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _position(loc: tuple[Any, ...], error_type: str) -> str:
    """The element path, with unknown keys (they come from the sender) left unnamed."""
    parts = list(loc)
    if error_type == "extra_forbidden" and parts:
        parts[-1] = "<unknown element>"
    return ".".join(str(p) if isinstance(p, int) or p == "<unknown element>" or _ELEMENT.match(str(p)) else "<key>" for p in parts)


def _validation_errors(err: ValidationError) -> list[str]:
    """``path: problem`` lines naming positions only: custom messages (fhir.resources' own) may quote values."""
    lines = []
    for item in err.errors(include_input=False, include_url=False, include_context=False)[:MAX_ERRORS]:
        error_type = str(item.get("type", ""))
        message = item.get("msg", "invalid") if error_type in _BUILTIN_ERRORS else "invalid value"
        lines.append(f"{_position(tuple(item.get('loc', ())), error_type)}: {message}")
    return lines


def _parameters_status(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The R4 backport's Parameters status, in SubscriptionStatus terms."""
    status: dict[str, Any] = {"events": []}
    for parameter in resource.get("parameter", []):
        name = parameter.get("name")
        if name == "subscription":
            status["subscription"] = (parameter.get("valueReference") or {}).get("reference")
        elif name == "topic":
            status["topic"] = parameter.get("valueCanonical") or parameter.get("valueUri")
        elif name == "status":
            status["status"] = parameter.get("valueCode")
        elif name == "type":
            status["type"] = parameter.get("valueCode")
        elif name == "events-since-subscription-start":
            status["events_since_start"] = parameter.get("valueString", parameter.get("valueInteger64", parameter.get("valueUnsignedInt")))
        elif name == "notification-event":
            event: dict[str, Any] = {}
            for part in parameter.get("part", []):
                if part.get("name") == "event-number":
                    event["event_number"] = part.get("valueString", part.get("valueInteger64", part.get("valueUnsignedInt")))
                elif part.get("name") == "timestamp":
                    event["timestamp"] = part.get("valueInstant")
                elif part.get("name") == "focus":
                    event["focus"] = (part.get("valueReference") or {}).get("reference")
            status["events"].append(event)
    return status


def _subscription_status(resource: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "subscription": (resource.get("subscription") or {}).get("reference"),
        "topic": resource.get("topic"),
        "status": resource.get("status"),
        "type": resource.get("type"),
        "events_since_start": resource.get("eventsSinceSubscriptionStart"),
        "events": [
            {
                "event_number": e.get("eventNumber"),
                "timestamp": e.get("timestamp"),
                "focus": (e.get("focus") or {}).get("reference"),
            }
            for e in resource.get("notificationEvent", [])
        ],
    }


def read_notification(body: Any) -> Notification:
    """Validate a notification bundle and return its status and events."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise NotificationError("Not a notification bundle", ["resourceType: must be Bundle"])
    # The FHIR models are imported on first use: a web process whose clinics do not
    # use FHIR subscriptions need not carry them (about 10 MB).
    bundle_type = body.get("type")
    if bundle_type == "subscription-notification":
        from fhir.resources.bundle import Bundle as model
    elif bundle_type == "history":
        from fhir.resources.R4B.bundle import Bundle as model
    else:
        raise NotificationError("Not a notification bundle", ["type: must be history (R4/R4B) or subscription-notification (R5)"])
    try:
        model.model_validate(body)
    except ValidationError as err:
        raise NotificationError("Invalid FHIR bundle", _validation_errors(err)) from None
    except (KeyError, TypeError, ValueError):
        # fhir.resources raises these (not ValidationError) for an entry whose resourceType it does not know.
        raise NotificationError("Invalid FHIR bundle", ["entry.resource.resourceType: not a resource type of this FHIR release"]) from None
    entries = body.get("entry") or []
    first = (entries[0].get("resource") if entries else None) or {}
    if first.get("resourceType") == "Parameters" and bundle_type == "history":
        version, raw_status = "R4", _parameters_status(first)
    elif first.get("resourceType") == "SubscriptionStatus":
        version, raw_status = ("R5" if bundle_type == "subscription-notification" else "R4B"), _subscription_status(first)
    else:
        raise NotificationError(
            "Not a notification bundle", ["entry.0.resource: must be the subscription status (Parameters in R4, SubscriptionStatus in R4B/R5)"]
        )
    try:
        status = NotificationStatusSchema().load(raw_status)
    except SchemaError as err:
        raise NotificationError("Invalid subscription status", err.messages) from None
    subscription = relative(status["subscription"]) or status["subscription"]
    by_reference: dict[str, Mapping[str, Any]] = {}
    for entry in entries[1:]:
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        for ref in (relative(entry.get("fullUrl")), f"{resource.get('resourceType')}/{resource.get('id')}" if resource.get("id") else None):
            if ref:
                by_reference[ref] = resource
    events = []
    for event in status["events"]:
        focus = relative(event["focus"])
        events.append(NotificationEvent(event["event_number"], event["timestamp"], focus, by_reference.get(focus) if focus else None))
    if status["type"] == "event-notification" and not events:
        raise NotificationError("Invalid subscription status", ["notificationEvent: an event-notification must list its events"])
    return Notification(
        version=version,
        subscription=subscription,
        topic=status["topic"],
        status=status["status"],
        type=status["type"],
        events_since_start=status["events_since_start"],
        events=tuple(events),
    )


def validate_resource(resource: Mapping[str, Any], models: str) -> None:
    """Validate one fetched resource with the release's model; NotificationError if invalid."""
    from fhir.resources import get_fhir_model_class as r5_class
    from fhir.resources.R4B import get_fhir_model_class as r4b_class

    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        raise NotificationError("Invalid FHIR resource", ["resourceType: missing"])
    try:
        cls = (r5_class if models == "R5" else r4b_class)(kind)
        cls.model_validate(resource)
    except ValidationError as err:
        raise NotificationError("Invalid FHIR resource", _validation_errors(err)) from None
    except (KeyError, TypeError, ValueError):
        raise NotificationError("Invalid FHIR resource", ["resourceType: not a resource type of this FHIR release"]) from None
