"""FHIR topic-based subscription notifications (DESIGN §3.3).

``notification`` reads and validates a notification bundle (R4 backport,
R4B, R5) with ``fhir.resources``; ``mapping`` turns a DocumentReference,
Appointment or Communication into Tend's §3.2 event shape; ``gaps`` tracks
event numbers; ``intake`` records notifications and subscription state;
``fetch`` is the worker job that fetches id-only resources and attachments.
"""
