"""What the alert tests share: findings rows written as the findings job writes them, a clock, and
a real HTTP server on loopback standing in for Slack or an Alertmanager webhook consumer."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.ports import free_port

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


# One webhook receiver for every finding, retried within seconds: the restart and fault tests'.
ONCALL_ALERTS = """
route:
  receiver: oncall
  group_by: [department]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: oncall
    type: webhook
    url: env:TEST_ONCALL_URL
delivery:
  initial_backoff: 1s
  max_backoff: 2s
"""


def insert_finding(
    cur,
    fingerprint: str,
    *,
    rule: str = "sprawl.unregistered_agent",
    category: str = "sprawl",
    severity: str = "warning",
    department: str | None = "marketing",
    agent: str | None = None,
    title: str | None = None,
    labels: dict[str, str] | None = None,
    evidence: dict[str, Any] | None = None,
    status: str = "open",
    at: datetime = T0,
    occurrences: int = 1,
    silenced_until: datetime | None = None,
) -> None:
    """One `findings` row, following warehouse/migrations/006_findings.sql."""
    cur.execute(
        """
        INSERT INTO findings (fingerprint, rule, category, severity, subject_kind, subject_id, dimension,
            agent_id, department_id, title, labels, evidence, status, first_seen, last_seen, resolved_at,
            occurrences, silenced_until, updated_at)
        VALUES (?, ?, ?, ?, 'identity', ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?)
        """,
        [
            fingerprint,
            rule,
            category,
            severity,
            fingerprint,
            agent,
            department,
            title or f"Unregistered agent {fingerprint} appeared",
            json.dumps(labels or {}),
            json.dumps(evidence or {"spend_usd": "12.50"}),
            status,
            at,
            at,
            occurrences,
            silenced_until,
            at,
        ],
    )


def resolve_finding(cur, fingerprint: str, at: datetime) -> None:
    cur.execute(
        "UPDATE findings SET resolved_at = ?, status = 'resolved', updated_at = ? WHERE fingerprint = ?",
        [at, at, fingerprint],
    )


def reopen_finding(cur, fingerprint: str, at: datetime) -> None:
    cur.execute(
        "UPDATE findings SET resolved_at = NULL, status = 'open', occurrences = occurrences + 1,"
        " last_seen = ?, updated_at = ? WHERE fingerprint = ?",
        [at, at, fingerprint],
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


class Sink:
    """A real HTTP server on loopback that records JSON POSTs and answers with a switchable status.

    `gate` is open by default; cleared, every request is held unanswered (a hanging receiver) until
    it is set again. `arrived` is set when a request has come in.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T000/B000/s3cr3t-webhook-token"

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sink.arrived.set()
                sink.gate.wait(120)
                if self.headers.get("Content-Type") != "application/json":
                    self.send_response(415)
                    self.end_headers()
                    return
                if sink.status == 200:
                    sink.received.append(json.loads(body))
                    sink.paths.append(self.path)
                self.send_response(sink.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if sink.status == 200 else b"internal_error")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(10)  # type: ignore[union-attr]
            self._server = None


def check_webhook_v4(message: dict[str, Any]) -> None:
    """Alertmanager's webhook v4 message, strictly: every field, its type, and nothing else."""
    assert set(message) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }, sorted(message)
    assert message["version"] == "4"
    assert isinstance(message["groupKey"], str) and message["groupKey"]
    assert isinstance(message["truncatedAlerts"], int)
    assert message["status"] in ("firing", "resolved")
    assert isinstance(message["receiver"], str)
    for key in ("groupLabels", "commonLabels", "commonAnnotations"):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in message[key].items()), key
    assert message["externalURL"].startswith("http")
    assert message["alerts"]
    for alert in message["alerts"]:
        assert set(alert) == {
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        }
        assert alert["status"] in ("firing", "resolved")
        assert all(isinstance(v, str) for v in alert["labels"].values())
        assert alert["labels"].get("alertname"), "Alertmanager consumers title alerts by labels.alertname"
        assert all(isinstance(v, str) for v in alert["annotations"].values())
        starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
        assert starts.tzinfo is not None
        assert alert["startsAt"].endswith("Z")
        if alert["status"] == "firing":
            assert alert["endsAt"] == "0001-01-01T00:00:00Z"
        else:
            assert datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")) >= starts
        assert alert["generatorURL"].startswith(message["externalURL"])
        assert alert["fingerprint"]
    firing = any(a["status"] == "firing" for a in message["alerts"])
    assert message["status"] == ("firing" if firing else "resolved")
    for key, value in message["commonLabels"].items():
        assert all(a["labels"].get(key) == value for a in message["alerts"])
    for key, value in message["groupLabels"].items():
        assert message["commonLabels"][key] == value
