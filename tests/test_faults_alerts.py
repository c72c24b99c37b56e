"""SIGKILL during alert delivery: the webhook receiver has the request in hand, the server dies before
the answer. After a restart the notification is delivered — at least once, as it must be when the
server cannot know whether the receiver acted — and is recorded once: the receiver gets the very
same message again (same groupKey and alerts, so it can deduplicate), and nothing else is sent.

(tests/test_alerts_restart.py covers the other window: killed between recording and sending.)
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.alerts_support import ONCALL_ALERTS, check_webhook_v4, insert_finding
from tests.faults_support import Serve, query, wait_for
from tests.ports import free_port
from warehouse.database import open_warehouse


class HoldingSink:
    """A webhook receiver that holds its first request unanswered until `release`; then answers 200."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.holding = threading.Event()
        self._release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.received.append(body)
                if len(sink.received) == 1:
                    sink.holding.set()
                    sink._release.wait(60)
                    return  # the sender is gone by now: no answer
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/oncall"

    def release(self) -> None:
        self._release.set()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def deliveries(serve: Serve, status: str) -> list[dict]:
    response = serve.api("GET", "/api/v1/alerts/deliveries", params={"status": status})
    response.raise_for_status()
    return response.json()


def test_sigkill_while_the_receiver_holds_the_request_then_restart_delivers_once_recorded(tmp_path):
    data = tmp_path / "data"
    with open_warehouse(data / "muster.duckdb") as con:
        insert_finding(con, "drift-claims", department="claims", severity="critical", category="drift")
    (tmp_path / "alerts.yaml").write_text(ONCALL_ALERTS)
    sink = HoldingSink()
    serve = Serve(
        data,
        tmp_path / "serve.log",
        MUSTER_ALERTS_FILE=str(tmp_path / "alerts.yaml"),
        MUSTER_ALERTS_INTERVAL_SECONDS="0.2",
        TEST_ONCALL_URL=sink.url,
    )
    try:
        serve.start()
        assert sink.holding.wait(60), "nothing was sent"
        [pending] = deliveries(serve, "pending")  # in flight: recorded, not yet marked
        serve.kill()
        sink.release()

        serve.start()
        wait_for(lambda: deliveries(serve, "delivered"), "the notification was not delivered after restart")
        [delivered] = deliveries(serve, "delivered")
        time.sleep(2)  # several more ticks: nothing is recorded or sent again
        assert deliveries(serve, "pending") == [] and len(deliveries(serve, "delivered")) == 1
        serve.stop()
    finally:
        serve.ensure_stopped()
        sink.stop()
    assert delivered["id"] == pending["id"]
    assert len(sink.received) == 2  # the interrupted send and its one retry
    first, second = sink.received
    check_webhook_v4(second)
    assert first == second  # the same message: a receiver can deduplicate on groupKey
    rows = query(data / "muster.duckdb", "SELECT status FROM alert_notifications")
    assert rows == [("delivered",)]
