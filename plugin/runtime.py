"""The long-lived parts a process needs, built once from the settings.

The web app and the worker each build one ``Runtime`` at start-up and bind it
(``handlers/`` does the wiring); rq job functions find it with ``current()``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis
from sqlalchemy.orm import Session

from plugin import config
from plugin.delivery.base import Channel
from plugin.queue import JobQueue
from plugin.rules import RuleSet
from plugin.secrets_box import SecretBox
from plugin.store.db import Database

if TYPE_CHECKING:
    from plugin.rules.packs import Pack


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
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, health_check_interval=30)
        return cls(
            settings=settings,
            db=Database(settings.database_url),
            redis=redis,
            queue=JobQueue(redis, settings.queue_name),
            box=SecretBox(settings.secret_key),
        )

    @classmethod
    def for_replay(cls, rules: RuleSet | None = None, *, rules_path: str | Path | None = None, daily_cap: int = 3) -> "Runtime":
        """A throwaway runtime for ``tend replay`` / ``tend rules explain``: nothing leaves the process.

        A fresh in-memory SQLite store (one shared connection), a ``DryRunQueue``
        that records instead of enqueueing, no Redis connection, fresh random keys.
        ``rules`` replaces the ruleset; otherwise ``rules_path`` (default: the
        default file) is loaded with every installed rule pack.
        """
        import secrets
        import tempfile

        from sqlalchemy.pool import StaticPool

        from plugin.queue import DryRunQueue
        from plugin.store.models import Base

        settings = config.Settings(
            database_url="sqlite://",
            redis_url="redis://replay.invalid/0",  # never connected to
            secret_key=secrets.token_urlsafe(32),
            pseudonym_key=secrets.token_urlsafe(32),
            instance_path=Path(tempfile.gettempdir()),
            rules_path=Path(rules_path) if rules_path is not None else config.DEFAULT_RULES,
            queue_name="tend-replay",
            daily_cap=daily_cap,
        )
        db = Database(settings.database_url, poolclass=StaticPool)
        Base.metadata.create_all(db.engine)
        runtime = cls(settings=settings, db=db, redis=None, queue=DryRunQueue(), box=SecretBox(settings.secret_key))  # type: ignore[arg-type]
        if rules is not None:
            runtime.__dict__["_rules_and_packs"] = (rules, [])
        return runtime

    @cached_property
    def _rules_and_packs(self) -> "tuple[RuleSet, list[Pack]]":
        from plugin.rules.packs import load_ruleset

        return load_ruleset(self.settings.rules_path)

    @cached_property
    def rules(self) -> RuleSet:
        """The ruleset file (``TEND_RULES``) extended with every installed rule pack (``tend.rules``)."""
        return self._rules_and_packs[0]

    @property
    def packs(self) -> "list[Pack]":
        return self._rules_and_packs[1]

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

    def assistance_line(self, clinic_id: str, session: Session | None = None) -> str | None:
        """The clinic's own assistance line for distress messages, else the deployment's."""
        from plugin.store.models import Clinic

        if session is None:
            with self.db.session() as own:
                return self.assistance_line(clinic_id, own)
        clinic = session.get(Clinic, clinic_id)
        return ((clinic.settings or {}).get("assistance_line") if clinic else None) or self.settings.assistance_line or None

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
