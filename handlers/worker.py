"""``tend worker``: an rq worker with the scheduler, plus the sweeper and heartbeat."""

from __future__ import annotations

import logging
import socket
import threading

from rq.worker import SimpleWorker

from handlers import logs
from plugin import jobs
from plugin.fhir import fetch as fhir_fetch
from plugin.runtime import Runtime

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 60.0
HEARTBEAT_EVERY_SECONDS = 15.0


class Sweeper(threading.Thread):
    """Sweeps at start and every minute; beats every 15 s for ``/readyz``."""

    def __init__(self, rt: Runtime, name: str) -> None:
        super().__init__(name="tend-sweeper", daemon=True)
        self.rt = rt
        self.worker_name = name
        self.stopping = threading.Event()

    def run(self) -> None:
        since_sweep = SWEEP_EVERY_SECONDS
        while not self.stopping.is_set():
            try:
                self.rt.queue.beat(self.worker_name)
                if since_sweep >= SWEEP_EVERY_SECONDS:
                    jobs.sweep()
                    fhir_fetch.sweep()  # id-only FHIR events whose fetch was never enqueued
                    since_sweep = 0.0
            except Exception as err:  # keep sweeping through a Redis or database outage
                log.warning("sweep failed: %s", type(err).__name__)
            self.stopping.wait(HEARTBEAT_EVERY_SECONDS)
            since_sweep += HEARTBEAT_EVERY_SECONDS


def run_worker(rt: Runtime, *, burst: bool = False) -> None:
    logs.configure(rt.settings.log_format)
    _ = rt.rules  # a broken ruleset or rule pack stops the worker at start, not at its first job
    name = f"tend-{socket.gethostname()}-{threading.get_native_id()}"
    # SimpleWorker runs jobs in this process: the rules and copy load once, and
    # a killed worker leaves claims that the sweeper recovers. It is made before
    # the sweeper uses Redis: rq raises the pool's socket timeout above its BLPOP
    # wait, which only connections opened afterwards pick up.
    worker = SimpleWorker([rt.queue.rq], connection=rt.redis, name=name)
    if burst:
        jobs.sweep()
        fhir_fetch.sweep()
    else:
        Sweeper(rt, name).start()
    worker.work(burst=burst, with_scheduler=True, logging_level="WARNING")
