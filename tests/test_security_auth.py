"""Authentication: failed attempts are rate-limited per client address (429 + Retry-After), and
secrets are only ever held and compared as SHA-256 digests."""

from __future__ import annotations

import hashlib

import grpc
import httpx
import pytest

from muster import auth
from muster.api.deps import FailedAuthLimit
from tests.conftest import start_server
from tests.payloads import trace_request
from tests.test_access import admin_headers


@pytest.fixture
def limited(tmp_path):
    server = start_server(
        tmp_path / "data", decode_workers=0, auth_failure_limit=5, auth_failure_window_seconds=60
    )
    yield server
    server.stop()


def test_after_n_failed_authentications_a_client_gets_429_with_retry_after_even_with_a_good_token(limited):
    url = limited.api_url + "/api/v1/whoami"
    good = admin_headers(limited)
    assert httpx.get(url, headers=good).status_code == 200  # successes do not count
    for attempt in range(5):
        wrong = {"Authorization": f"Bearer mst_guess{attempt}"}
        assert httpx.get(url, headers=wrong).status_code == 401
    for headers in ({"Authorization": "Bearer mst_guess5"}, {}, good):
        refused = httpx.get(url, headers=headers)
        assert refused.status_code == 429, refused.text
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert "too many failed authentications" in refused.json()["detail"]
    assert httpx.get(limited.api_url + "/healthz").status_code == 200  # unauthenticated routes still answer


def test_the_limit_is_per_client_address():
    limit = FailedAuthLimit(3, 60)
    for _ in range(3):
        assert limit.retry_after("10.0.0.1") is None
        limit.failed("10.0.0.1")
    assert 1 <= limit.retry_after("10.0.0.1") <= 60
    assert limit.retry_after("10.0.0.2") is None  # another address has its own budget


def test_a_limit_of_zero_turns_it_off(tmp_path):
    server = start_server(tmp_path / "data", decode_workers=0, auth_failure_limit=0)
    try:
        url = server.api_url + "/api/v1/whoami"
        for _ in range(40):
            assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers=admin_headers(server)).status_code == 200
    finally:
        server.stop()


def test_tokens_are_stored_and_looked_up_as_digests_never_as_secrets(server, monkeypatch):
    created = httpx.post(
        server.api_url + "/api/v1/tokens", json={"role": "viewer"}, headers=admin_headers(server)
    ).json()
    secret = created["secret"]
    rows = server.query("SELECT * FROM api_tokens")
    assert not any(secret in str(value) for row in rows for value in row)
    assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in rows)

    looked_up: list[str] = []
    original = auth.access_store.token_by_secret
    monkeypatch.setattr(
        auth.access_store,
        "token_by_secret",
        lambda cur, digest: looked_up.append(digest) or original(cur, digest),
    )
    with server.server.warehouse.cursor() as cur:
        assert auth.authenticate(cur, secret).role == "viewer"
        assert auth.authenticate(cur, secret[:-1] + "x") is None
    # the store is asked for digests only: no secret is ever compared byte by byte
    assert looked_up == [hashlib.sha256(s.encode()).hexdigest() for s in (secret, secret[:-1] + "x")]


def test_wrong_ingest_credentials_count_too_and_then_the_address_is_throttled_everywhere(limited):
    body = trace_request(1).SerializeToString()
    protobuf = {"Content-Type": "application/x-protobuf"}
    traces = limited.http_url + "/v1/traces"
    assert httpx.post(traces, content=body, headers=protobuf).status_code == 200  # anonymous is allowed
    for attempt in range(5):
        guess = protobuf | {"Authorization": f"Bearer mic_guess{attempt}"}
        assert httpx.post(traces, content=body, headers=guess).status_code == 401
    refused = httpx.post(traces, content=body, headers=protobuf)  # even without a credential now
    assert refused.status_code == 503 and 1 <= int(refused.headers["Retry-After"]) <= 60, refused.text
    with grpc.insecure_channel(limited.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")(body, timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "too many failed authentications" in caught.value.details()
    # one budget per address for the receivers and the API alike
    assert httpx.get(limited.api_url + "/api/v1/whoami", headers=admin_headers(limited)).status_code == 429
    assert limited.query("SELECT count(*) FROM spans") == [(1,)]
