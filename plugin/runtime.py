"""The long-lived parts a process needs, built once from the settings.

The web app and the worker each build one ``Runtime`` at start-up and bind it
(``handlers/`` does the wiring); rq job functions find it with ``current()``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property

from redis import Redis
from sqlalchemy.orm import Session

from plugin import config
from plugin.delivery.base import Channel
from plugin.queue import JobQueue
from plugin.rules import RuleSet
from plugin.secrets_box import SecretBox
from plugin.store.db import Database


@dataclass
class Runtime:
    settings: config.Settings
    db: Database
    redis: Redis
    queue: JobQueue
    box: SecretBox
    pid: int = field(default_factory=os.getpid)
    _clinic_rules: dict[tuple[str, str], RuleSet] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, settings: config.Settings) -> "Runtime":
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            redis=redis,
            queue=JobQueue(redis, settings.queue_name),
            box=SecretBox(settings.secret_key),
        )

    @cached_property
    def rules(self) -> RuleSet:
        return RuleSet.load(self.settings.rules_path)

    def rules_for(self, clinic_id: str, session: Session | None = None) -> RuleSet:
        """The ruleset with a clinic's overrides (disabled rules, tuned params) applied.

        Overrides live in the clinic's settings under ``rules``; the compiled
        result is cached per clinic until those settings change. Pass the
        caller's session when inside a transaction: on SQLite a second
        connection would wait for the first one's write lock.
        """
        from plugin.store.models import Clinic

        if session is None:
            with self.db.session() as own:
                return self.rules_for(clinic_id, own)
        clinic = session.get(Clinic, clinic_id)
        overrides = (clinic.settings or {}).get("rules") if clinic else None
        if not overrides:
            return self.rules
        key = (clinic_id, json.dumps(overrides, sort_keys=True))
        if key not in self._clinic_rules:
            self._clinic_rules[key] = self.rules.with_overrides(overrides)
        return self._clinic_rules[key]

    @cached_property
    def channel(self) -> Channel:
        if self.settings.delivery_channel == "slack":
            from plugin.delivery.slack import SlackChannel

            return SlackChannel(self.settings.slack_bot_token or "", self.settings.slack_api_url)
        from plugin.delivery.console import ConsoleChannel

        return ConsoleChannel()


_current: Runtime | None = None


def bind(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    """The bound runtime; built from the environment when a job runs unbound."""
    global _current
    if _current is None:
        _current = Runtime.build(config.load())
    elif _current.pid != os.getpid():
        # A forked child must not share the parent's pooled connections.
        _current.db.engine.dispose(close=False)
        _current.pid = os.getpid()
    return _current
