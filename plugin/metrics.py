"""Prometheus instruments shared by the web process and the workers.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``tend dev`` and the Procfile set it),
every process on a machine writes its samples there and ``/metrics`` reports
their sum; without it each process reports its own.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS = Counter("tend_events_total", "Inbound events by source and outcome", ["source", "outcome"])
DECISIONS = Counter("tend_decisions_total", "Rule decisions by rule and kind", ["rule", "kind"])
THERAPIST_MESSAGES_UNREAD = Counter(
    "tend_therapist_messages_unread_total",
    "Therapist DMs whose signals could not be extracted (recorded text-free, answered with the neutral line)",
)
DELIVERIES = Counter("tend_deliveries_total", "Delivery attempts by outcome", ["outcome"])
DELIVERY_LATENCY = Histogram(
    "tend_delivery_latency_seconds",
    "Seconds from a suggestion's planned time to its post",
    buckets=(0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10, 30, 60, 300),
)
# EHR integrations (issue 5)
FHIR_GAPS = Counter(
    "tend_fhir_gap_events_total",
    "FHIR subscription event numbers found missing (opened) and later received (closed)",
    ["state"],
)
FHIR_FETCHES = Counter("tend_fhir_fetches_total", "id-only FHIR resource fetches by outcome", ["outcome"])
CDS_CALLS = Counter("tend_cds_calls_total", "CDS Hooks calls by hook and outcome", ["hook", "outcome"])
