"""The outbox survives SIGKILL: a notification recorded while its receiver is unreachable is sent exactly
once after a restart, and the server's log never shows the webhook URL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from tests.alerts_support import ONCALL_ALERTS, Sink, check_webhook_v4, insert_finding
from tests.ports import free_port
from warehouse.database import open_warehouse


class Serve:
    """`muster serve` as a real subprocess, its log in a file."""

    def __init__(self, data_dir: Path, alerts_file: Path, webhook_url: str) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.env = os.environ | {
            "MUSTER_DATA_DIR": str(data_dir),
            "MUSTER_OTLP_GRPC_PORT": str(free_port()),
            "MUSTER_OTLP_HTTP_PORT": str(free_port()),
            "MUSTER_API_PORT": str(self.api_port),
            "MUSTER_DECODE_WORKERS": "0",
            "MUSTER_JOBS_INTERVAL_SECONDS": "0",
            "MUSTER_ALERTS_FILE": str(alerts_file),
            "MUSTER_ALERTS_INTERVAL_SECONDS": "0.2",
            "TEST_ONCALL_URL": webhook_url,
        }
        self.log = data_dir.parent / "serve.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "muster", "serve"], env=self.env, stdout=log, stderr=log
            )
        self.wait_for(lambda: self._ready(), "the server did not become ready")

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def deliveries(self, status: str) -> list[dict]:
        token = (self.data_dir / "admin.token").read_text().strip()
        response = httpx.get(
            f"http://127.0.0.1:{self.api_port}/api/v1/alerts/deliveries",
            params={"status": status},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    @staticmethod
    def wait_for(condition, message: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, message
            time.sleep(0.1)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0, self.log.read_text()


def test_sigkill_between_record_and_send_then_restart_sends_once(tmp_path):
    data_dir = tmp_path / "data"
    with open_warehouse(data_dir / "muster.duckdb") as con:
        insert_finding(con, "drift-claims", department="claims", severity="critical", category="drift")
    alerts_file = tmp_path / "alerts.yaml"
    alerts_file.write_text(ONCALL_ALERTS)
    sink = Sink()  # not started yet: the receiver refuses connections
    serve = Serve(data_dir, alerts_file, sink.url)
    serve.start()
    try:
        serve.wait_for(lambda: serve.deliveries("pending"), "no notification was recorded")
        [pending] = serve.deliveries("pending")
        serve.wait_for(lambda: serve.deliveries("pending")[0]["attempts"] >= 1, "no attempt was made")
        assert "cannot reach" in serve.deliveries("pending")[0]["last_error"]
    finally:
        serve.kill()

    sink.start()  # the receiver comes back while the server is down
    try:
        serve.start()
        serve.wait_for(lambda: serve.deliveries("delivered"), "the recorded notification was not sent")
        [delivered] = serve.deliveries("delivered")
        assert delivered["id"] == pending["id"] and delivered["seq"] == 1
        time.sleep(2)  # several more ticks: nothing is recorded or sent again
        assert len(sink.received) == 1
        assert serve.deliveries("pending") == [] and len(serve.deliveries("delivered")) == 1
        serve.stop()
    finally:
        if serve.process.poll() is None:
            serve.kill()
        sink.stop()
    check_webhook_v4(sink.received[0])
    assert [a["fingerprint"] for a in sink.received[0]["alerts"]] == ["drift-claims"]
    log = serve.log.read_text()
    assert "HTTP Request: POST" in log  # httpx logged its request, with the URL redacted
    assert "s3cr3t-webhook-token" not in log and "/hooks/T000" not in log
    with duckdb.connect(str(data_dir / "muster.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT status, attempts FROM alert_notifications").fetchall()
    assert rows[0][0] == "delivered" and rows[0][1] >= 2 and len(rows) == 1
    assert json.dumps(sink.received[0])  # a plain JSON document
