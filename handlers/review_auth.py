"""Who is reading the review: API bearer tokens, web sign-in, sessions, CSRF, sign-out.

- API: ``Authorization: Bearer tend_...``, looked up by its SHA-256 (the only form stored).
- Web: the same token, typed once into the sign-in form, is exchanged for a Flask session
  cookie (HttpOnly, SameSite=Lax, Secure when ``TEND_PUBLIC_URL`` is https or the request
  came over HTTPS). The session keeps the user id and a fingerprint of the token hash, so
  replacing a user's token ends their sessions.
- Forms carry a per-session CSRF token in a hidden field, checked on every POST.

Registering ``bp`` configures the app's session cookie (``record_once``).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, current_app, g, has_request_context, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import select

from handlers.problems import problem
from plugin.delivery import copy
from plugin.review import queries
from plugin.runtime import Runtime
from plugin.secrets_box import same_token, token_hash
from plugin.store.models import User

bp = Blueprint("review_auth", __name__, url_prefix="/review", template_folder="templates")

SESSION_LIFETIME = timedelta(hours=12)
_UID, _FINGERPRINT, _CSRF = "review_uid", "review_fp", "review_csrf"
CSRF_FIELD = "csrf_token"


class _Sessions(SecureCookieSessionInterface):
    """The Secure flag also when this request itself came over HTTPS (behind a proxy with ProxyFix)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or (has_request_context() and request.is_secure)


@bp.record_once
def _configure(state: Any) -> None:
    app: Flask = state.app
    runtime: Runtime = app.extensions["tend"]
    app.config.update(
        SESSION_COOKIE_NAME="tend_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = _Sessions()


def runtime() -> Runtime:
    return current_app.extensions["tend"]


def say(key: str, default: str | None = None, **params: Any) -> str:
    """A sentence of the review's copy (``review.<key>``); ``default`` when the key is unknown."""
    try:
        return copy.text(f"review.{key}", **params)
    except copy.MissingCopy:
        if default is None:
            raise
        return default


# --- who is asking -------------------------------------------------------------------


def _fingerprint(stored_hash: str) -> str:
    return stored_hash[:16]


def _user_by_token(token: str) -> User | None:
    token = token.strip()
    if not token or len(token) > 200:
        return None
    with runtime().db.session() as db:
        user = db.scalar(select(User).where(User.token_hash == token_hash(token)))
    return user if user is not None and same_token(token, user.token_hash) else None


def _user_from_session() -> User | None:
    uid = session.get(_UID)
    if not isinstance(uid, int):
        return None
    with runtime().db.session() as db:
        user = db.get(User, uid)
    if user is None or not hmac.compare_digest(session.get(_FINGERPRINT, ""), _fingerprint(user.token_hash)):
        return None
    return user


def current_user() -> User | None:
    """The signed-in user of this request: a bearer token if one is sent, else the session."""
    if "review_user" not in g:
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            g.review_user = _user_by_token(token) if scheme.lower() == "bearer" else None
        else:
            g.review_user = _user_from_session()
    return g.review_user


def unauthorized() -> Response:
    return problem(
        401,
        "Unauthorized",
        "Send an access token as 'Authorization: Bearer tend_...'.",
        headers={"WWW-Authenticate": 'Bearer realm="tend"'},
    )


def audit(user: User, what: str, params: dict[str, Any]) -> None:
    """Append one access-log row for this read, committed before the response goes out."""
    with runtime().db.session() as db:
        queries.record_access(db, user, what, params)


# --- CSRF ----------------------------------------------------------------------------


def csrf_token() -> str:
    token = session.get(_CSRF)
    if not isinstance(token, str):
        token = session[_CSRF] = secrets.token_urlsafe(32)
    return token


def csrf_ok() -> bool:
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get(_CSRF)
    return isinstance(expected, str) and bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


def page_context() -> dict[str, Any]:
    return {"say": say, "csrf_token": csrf_token, "csrf_field": CSRF_FIELD, "viewer": current_user()}


bp.context_processor(page_context)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def secure_headers(response: Response) -> Response:
    """Review pages are private, never framed, and load nothing from elsewhere."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


bp.after_request(secure_headers)


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Pages: a signed-in user or a redirect to the sign-in form (coming back here after)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            return redirect(url_for("review_auth.sign_in", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def _safe_next(target: str | None) -> str:
    """Only a path on this site under /review: never another host (open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/review") and "\\" not in target:
            return target
    return url_for("review.log")


# --- routes ----------------------------------------------------------------------------


@bp.get("/sign-in")
def sign_in() -> Any:
    if current_user() is not None:
        return redirect(_safe_next(request.args.get("next")))
    notice = say("sign_in.signed_out") if request.args.get("signed_out") else None
    return render_template("review/sign_in.html", next=request.args.get("next", ""), error=None, notice=notice)


@bp.post("/sign-in")
def sign_in_post() -> Any:
    target = request.form.get("next", "")
    if not csrf_ok():
        session.pop(_CSRF, None)
        return render_template("review/sign_in.html", next=target, error=say("sign_in.expired"), notice=None), 400
    user = _user_by_token(request.form.get("token", ""))
    if user is None:
        return render_template("review/sign_in.html", next=target, error=say("sign_in.wrong"), notice=None), 401
    session.clear()  # a fresh session (and CSRF token) at every sign-in: no fixation
    session.permanent = True
    session[_UID] = user.id
    session[_FINGERPRINT] = _fingerprint(user.token_hash)
    csrf_token()
    audit(user, "review.sign_in", {})
    return redirect(_safe_next(target), code=303)


@bp.post("/sign-out")
def sign_out() -> Any:
    if not csrf_ok():
        return problem(400, "Bad Request", "The form had expired; reload the page and try again.")
    session.clear()
    return redirect(url_for("review_auth.sign_in", signed_out=1), code=303)
