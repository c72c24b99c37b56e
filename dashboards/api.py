"""The dashboards' client for Muster's HTTP API: bearer token, short caches, errors as messages.

Reads are cached for a few seconds per token (the cache key holds a digest of the token, never the
token), so moving between pages and filters does not ask the server again; writes clear the cache.
An endpoint the server does not have yet (FastAPI's bare 404) raises `NotAvailable`, which pages
show as "not available yet"; every other failure raises `ApiError` with the server's explanation,
shown with `st.error`, never as a traceback.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx
import streamlit as st

from dashboards.text import plain

API_URL_VARIABLE = "MUSTER_API_URL"
TOKEN_KEY = "muster_token"  # noqa: S105 - a session_state key; the token never goes into the URL
WHO_KEY = "muster_who"
CACHE_SECONDS = 15
TIMEOUT_SECONDS = 30


class ApiError(Exception):
    """The API refused or failed a request; the message says what the server said."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotAvailable(ApiError):
    """The server has no such endpoint yet (another part of Muster still being built)."""


def base_url() -> str:
    """The API's base URL, as `muster dashboard` passed it (MUSTER_API_URL)."""
    url = os.environ.get(API_URL_VARIABLE, "").strip()
    if not url:
        raise ApiError(
            f"{API_URL_VARIABLE} is not set: start the dashboards with `muster dashboard` beside a "
            "running `muster serve`, or set it to the API's address"
        )
    return url.rstrip("/")


def _verify() -> bool | str:
    # A server with its own (possibly self-signed) certificate: trust that file, as the CLI does.
    return os.environ.get("MUSTER_TLS_CERT_FILE") or True


def token() -> str | None:
    return st.session_state.get(TOKEN_KEY)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def request(method: str, path: str, secret: str, **kwargs: Any) -> Any:
    """One API call with `secret` as the bearer token; the decoded answer, or ApiError."""
    response = _call(method, path, secret, **kwargs)
    if response.status_code == 204 or not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


def _call(method: str, path: str, secret: str, **kwargs: Any) -> httpx.Response:
    try:
        response = httpx.request(
            method,
            base_url() + path,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=TIMEOUT_SECONDS,
            verify=_verify(),
            **kwargs,
        )
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach Muster's API at {base_url()}: {exc}") from None
    if response.status_code >= 400:
        raise _error(response)
    return response


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
        detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
        problems = body.get("problems") if isinstance(body, dict) else None
    except ValueError:
        detail, problems = response.text, None
    if response.status_code == 404 and detail == "Not Found":
        return NotAvailable("this server does not offer it yet", 404)
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg')}" for d in detail)
    if problems:
        detail += "".join(
            f"\n- {p.get('field') or p.get('path') or ''}: {p.get('message')}" for p in problems
        )
    return ApiError(f"{detail} (HTTP {response.status_code})", response.status_code)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=500)
def _cached_get(url: str, token_digest: str, path: str, params: tuple, _secret: str) -> Any:
    # `url` and `token_digest` make the key: one cache per server and per token.
    return request("GET", path, _secret, params=dict(params))


def get(path: str, **params: Any) -> Any:
    """GET `path` with the signed-in token, cached for CACHE_SECONDS; raises ApiError."""
    secret = token()
    if not secret:
        raise ApiError("sign in first", 401)
    cleaned = tuple(sorted((k, str(v)) for k, v in params.items() if v not in (None, "")))
    return _cached_get(base_url(), _digest(secret), path, cleaned, secret)


def send(method: str, path: str, **kwargs: Any) -> Any:
    """A write (POST, PUT, DELETE) with the signed-in token; clears cached reads so pages show it."""
    secret = token()
    if not secret:
        raise ApiError("sign in first", 401)
    try:
        return request(method, path, secret, **kwargs)
    finally:
        _cached_get.clear()


def download(path: str, **params: Any) -> bytes:
    """A file the API serves (a FOCUS export), byte for byte as sent; not cached: files can be large."""
    secret = token()
    if not secret:
        raise ApiError("sign in first", 401)
    return _call("GET", path, secret, params={k: v for k, v in params.items() if v not in (None, "")}).content


def load(path: str, what: str, **params: Any) -> Any:
    """GET with a loading state; on failure show why on the page and return None."""
    with st.spinner(f"Loading {what}…"):
        try:
            return get(path, **params)
        except NotAvailable:
            st.info(f"{what.capitalize()}: not available yet on this server.")
        except ApiError as exc:
            st.error(f"Could not load {what}: {plain(exc)}")
    return None


def who() -> dict[str, Any]:
    """The signed-in token's role, scope and permissions (asked once per sign-in)."""
    return st.session_state.get(WHO_KEY) or {}


def may(permission: str) -> bool:
    return permission in who().get("permissions", ())


def sign_in(secret: str) -> dict[str, Any]:
    """Check a token with the server and keep it in the session; raises ApiError when refused."""
    found = request("GET", "/api/v1/whoami", secret.strip())
    st.session_state[TOKEN_KEY] = secret.strip()
    st.session_state[WHO_KEY] = found
    return found


def sign_out() -> None:
    for key in (TOKEN_KEY, WHO_KEY):
        st.session_state.pop(key, None)
