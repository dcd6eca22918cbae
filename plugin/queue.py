"""The rq queue Tend's jobs travel on. Job arguments are ids, never content."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.scheduler import RQScheduler

log = logging.getLogger(__name__)

HEARTBEAT_PREFIX = "tend:heartbeat:"
HEARTBEAT_TTL_SECONDS = 90


class JobQueue:
    def __init__(self, redis: Redis, name: str) -> None:
        self.redis = redis
        self.rq = Queue(name, connection=redis)

    def evaluate(self, event_id: int) -> bool:
        """Enqueue evaluation; False when Redis is unreachable (the sweeper will retry)."""
        return self._safely(lambda: self.rq.enqueue("plugin.jobs.evaluate", event_id, job_id=f"evaluate-{event_id}"))

    def deliver_at(self, when: datetime, suggestion_id: int, attempt: int | str = 0) -> bool:
        """Schedule a delivery; one that is already due skips the scheduler's polling delay.

        ``attempt`` makes the job id unique per scheduling, so a reschedule is never
        swallowed by an earlier job of the same id.
        """
        job_id = f"deliver-{suggestion_id}-{attempt}"
        if when <= datetime.now(timezone.utc):
            return self._safely(lambda: self.rq.enqueue("plugin.jobs.deliver", suggestion_id, job_id=job_id))
        return self._safely(lambda: self.rq.enqueue_at(when, "plugin.jobs.deliver", suggestion_id, job_id=job_id))

    def _safely(self, enqueue) -> bool:  # type: ignore[no-untyped-def]
        try:
            enqueue()
            return True
        except RedisError as err:
            log.warning("could not enqueue (%s); the sweeper will pick it up", type(err).__name__)
            return False

    # --- liveness, for /readyz -------------------------------------------------
    def beat(self, worker_name: str) -> None:
        self.redis.set(HEARTBEAT_PREFIX + worker_name, str(time.time()), ex=HEARTBEAT_TTL_SECONDS)

    def last_heartbeat_age(self) -> float | None:
        """Seconds since the freshest worker heartbeat, None when no worker beats."""
        ages = []
        for key in self.redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=100):
            value = self.redis.get(key)
            if value is not None:
                ages.append(time.time() - float(value))
        return min(ages) if ages else None

    def scheduler_present(self) -> bool:
        return bool(self.redis.exists(RQScheduler.get_locking_key(self.rq.name)))

    def depth(self) -> int:
        return len(self.rq) + self.rq.scheduled_job_registry.count


class DryRunQueue:
    """A queue that records what would be enqueued and sends nothing (``tend replay``).

    Same methods as ``JobQueue``; nothing leaves the process, so a replay can
    never reach Redis, a worker or Slack. ``evaluated`` and ``deliveries`` keep
    the calls in order for whoever wants to read them.
    """

    def __init__(self, name: str = "tend-dry-run") -> None:
        self.name = name
        self.evaluated: list[int] = []
        self.deliveries: list[tuple[datetime, int, int | str]] = []  # (when, suggestion_id, attempt)
        self.beats: dict[str, float] = {}

    def evaluate(self, event_id: int) -> bool:
        self.evaluated.append(event_id)
        return True

    def deliver_at(self, when: datetime, suggestion_id: int, attempt: int | str = 0) -> bool:
        self.deliveries.append((when, suggestion_id, attempt))
        return True

    def beat(self, worker_name: str) -> None:
        self.beats[worker_name] = time.time()

    def last_heartbeat_age(self) -> float | None:
        return min((time.time() - at for at in self.beats.values()), default=None)

    def scheduler_present(self) -> bool:
        return False

    def depth(self) -> int:
        return len(self.evaluated) + len(self.deliveries)
