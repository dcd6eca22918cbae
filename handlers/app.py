"""``create_app()``: the Flask app with every edge wired to the core."""

from __future__ import annotations

import logging

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from handlers import ehr, health, logs
from handlers import cds_hooks, fhir
from handlers import slack as slack_edge
from handlers import review_api, review_auth, review_pages
from handlers.problems import from_http_exception, problem
from plugin import config, signals
from plugin.failures import describe
from plugin.runtime import Runtime, bind
from schemas.ehr import MAX_BODY_BYTES

log = logging.getLogger(__name__)


def create_app(settings: config.Settings | None = None, runtime: Runtime | None = None) -> Flask:
    settings = settings or (runtime.settings if runtime else config.load())
    runtime = runtime or Runtime.build(settings)
    bind(runtime)
    logs.configure(settings.log_format)
    _ = runtime.rules  # load the ruleset and rule packs now: a broken pack stops start-up, never half-loaded
    signals.warm()  # once per process: the first webhook does not pay for building the pipelines

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY_BYTES, SECRET_KEY=settings.secret_key, JSON_SORT_KEYS=False)
    app.extensions["tend"] = runtime
    logs.install(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(ehr.bp)
    fhir.register(app)  # /webhooks/<clinic>/fhir and the fhir_gaps /readyz check
    app.register_blueprint(cds_hooks.bp)  # /cds-services
    slack_edge.init_app(app, runtime)  # /slack/events (Bolt when Slack is configured)
    app.register_blueprint(review_auth.bp)
    app.register_blueprint(review_pages.bp)
    review_api.init_app(app)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return from_http_exception(err)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.error("unhandled %s", describe(err))  # never the message: it could carry request content
        return problem(500, "Internal error", "Something went wrong on our side; it has been logged.")

    return app
