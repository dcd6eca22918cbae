"""Settings from ``TEND_*`` environment variables, validated once at start-up.

A deployment is configured only through the environment so that secrets never
sit in files in the repository. A missing or malformed setting stops start-up
with one line naming it (``ConfigError``), rather than failing later inside a
request or a job.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INSTANCE = Path.cwd() / "instance"
DEFAULT_RULES = PROJECT_ROOT / "manifests" / "rules.yaml"
SLACK_API_URL = "https://slack.com/api/"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it in one line."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    secret_key: str
    pseudonym_key: str
    instance_path: Path
    rules_path: Path
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = SLACK_API_URL
    log_format: str = "text"
    public_url: str = "http://127.0.0.1:5000"
    queue_name: str = "tend"
    assistance_line: str = ""
    daily_cap: int = 3
    # How long a claim protects a send in progress before the sweeper treats it as crashed.
    sending_lease: timedelta = timedelta(minutes=2)
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def delivery_channel(self) -> str:
        """Slack when a bot token is configured, the console otherwise."""
        return "slack" if self.slack_bot_token else "console"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _dev_secret(instance: Path, name: str) -> str:
    """A per-instance random key for embedded use, so `tend dev` needs no set-up.

    Kept in the instance folder (never in the repository) so that pseudonyms and
    encrypted columns stay stable across restarts of the same instance.
    """
    path = instance / f".{name}"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _require_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    parsed = urlparse(value)
    if parsed.scheme.split("+")[0] not in schemes:
        raise ConfigError(f"{name} must be a {' or '.join(schemes)} URL, got scheme {parsed.scheme or 'none'!r}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def load(env: Mapping[str, str] | None = None, *, production: bool = False) -> Settings:
    """Read and validate the settings.

    In ``production`` mode the keys must come from the environment: a generated
    key would silently change pseudonyms when the instance folder is lost.
    """
    env = os.environ if env is None else env
    instance = Path(env.get("TEND_INSTANCE_PATH") or DEFAULT_INSTANCE).resolve()

    database_url = env.get("TEND_DATABASE_URL") or f"sqlite:///{instance / 'tend.sqlite3'}"
    _require_url("TEND_DATABASE_URL", database_url, ("sqlite", "postgresql"))
    redis_url = _require_url("TEND_REDIS_URL", env.get("TEND_REDIS_URL") or "redis://127.0.0.1:6379/0", ("redis", "rediss", "unix"))

    keys = {}
    for name, dev_name in (("TEND_SECRET_KEY", "secret_key"), ("TEND_PSEUDONYM_KEY", "pseudonym_key")):
        value = env.get(name)
        if not value:
            if production:
                raise ConfigError(f"{name} is required in production (32+ random characters)")
            value = _dev_secret(instance, dev_name)
        if len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters")
        keys[name] = value

    log_format = env.get("TEND_LOG_FORMAT", "text")
    if log_format not in ("json", "text"):
        raise ConfigError(f"TEND_LOG_FORMAT must be 'json' or 'text', got {log_format!r}")

    token = env.get("TEND_SLACK_BOT_TOKEN") or None
    if token and not token.startswith("xoxb-"):
        raise ConfigError("TEND_SLACK_BOT_TOKEN must be a bot token starting with 'xoxb-'")
    slack_api_url = env.get("TEND_SLACK_API_URL") or SLACK_API_URL
    _require_url("TEND_SLACK_API_URL", slack_api_url, ("http", "https"))
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"

    rules_path = Path(env.get("TEND_RULES") or DEFAULT_RULES)
    if not rules_path.is_file():
        raise ConfigError(f"TEND_RULES names no readable file: {rules_path}")

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key=keys["TEND_SECRET_KEY"],
        pseudonym_key=keys["TEND_PSEUDONYM_KEY"],
        instance_path=instance,
        rules_path=rules_path,
        slack_bot_token=token,
        slack_signing_secret=env.get("TEND_SLACK_SIGNING_SECRET") or None,
        slack_app_token=env.get("TEND_SLACK_APP_TOKEN") or None,
        slack_api_url=slack_api_url,
        log_format=log_format,
        public_url=(env.get("TEND_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/"),
        queue_name=env.get("TEND_QUEUE") or "tend",
        assistance_line=env.get("TEND_ASSISTANCE_LINE", ""),
        daily_cap=_int(env, "TEND_DAILY_CAP", 3, minimum=1),
        sending_lease=timedelta(seconds=_int(env, "TEND_SENDING_LEASE_SECONDS", 120, minimum=1)),
    )
