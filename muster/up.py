"""`muster up`: the server, the dashboards and (with `--demo`) a simulated fleet, run as one supervised unit.

Each part is a child process of its own (`muster serve`, `muster dashboard`, `muster simulate`),
so a crash in one is reported by name instead of taking the others' state with it. Start-up waits
for each part's health check before the next starts; output lines carry the part's name. If the
server or the dashboards exit on their own, everything stops and `up` exits non-zero: a half-running
Muster is worse than a stopped one. Ctrl-C (or SIGTERM) stops the parts in reverse order, giving each
time to finish cleanly — the server commits what it has acknowledged before it exits.

A second `up` on the same data directory finds the first by its runtime file and health check and
says so, instead of starting a server that DuckDB's lock would refuse anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from muster.settings import Settings

__all__ = ["Part", "Supervisor", "UpError", "run_up", "wait_until"]

_STOP_GRACE_S = 30.0  # the server may need a few seconds to commit and checkpoint


class UpError(RuntimeError):
    """A part could not start or stopped on its own; the message names it and says why."""


@dataclass
class Part:
    """One supervised child: its name, its command, and whether its exit ends the whole unit."""

    name: str
    args: Sequence[str]
    essential: bool = True  # a finished simulator is fine; a finished server is not
    process: subprocess.Popen | None = field(default=None, repr=False)


def muster_command(*args: str) -> list[str]:
    """`muster <args>` run by this Python, so the children use the same installation."""
    return [sys.executable, "-m", "muster", *args]


def wait_until(check: Callable[[], bool], *, part: Part, timeout: float, what: str) -> None:
    """Wait for `check` to pass; UpError if the part exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.process is not None and part.process.poll() is not None:
            raise UpError(f"{part.name} exited with code {part.process.returncode} before {what}")
        if check():
            return
        time.sleep(0.25)
    raise UpError(f"{part.name}: {what} did not happen within {timeout:.0f} s")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, verify=False).status_code == 200  # noqa: S501 - local health check
    except httpx.HTTPError:
        return False


class Supervisor:
    """Starts parts, relays their output with their names, and stops them all in reverse order."""

    def __init__(self, settings: Settings, *, out: Callable[[str], None] = print) -> None:
        self._env = os.environ | {"MUSTER_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"}
        self._env |= _dashboard_link(settings)
        self._out = out
        self.parts: list[Part] = []
        self._stopping = threading.Event()

    def start(self, part: Part) -> Part:
        if self._stopping.is_set():
            return part  # stopping: start nothing more
        part.process = subprocess.Popen(  # our own command line, no shell
            list(part.args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._env,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        self.parts.append(part)
        threading.Thread(target=self._relay, args=(part,), name=f"relay-{part.name}", daemon=True).start()
        return part

    def _relay(self, part: Part) -> None:
        assert part.process is not None and part.process.stdout is not None
        for line in part.process.stdout:
            self._out(f"[{part.name}] {line.rstrip()}")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self) -> None:
        """Make `watch` return (from a signal handler or another thread)."""
        self._stopping.set()

    def watch(self) -> None:
        """Block until an essential part exits (UpError) or a stop is requested."""
        while not self._stopping.wait(0.5):
            for part in self.parts:
                code = part.process.poll() if part.process else None
                if code is not None and part.essential:
                    raise UpError(f"{part.name} exited with code {code}; stopping Muster")

    def stop(self) -> None:
        """Stop every part, last started first: SIGTERM, then SIGKILL after a grace period."""
        self._stopping.set()
        for part in reversed(self.parts):
            process = part.process
            if process is None or process.poll() is not None:
                continue
            _signal_group(process, signal.SIGTERM)  # the part and what it started (streamlit, decode workers)
            try:
                process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._out(f"[{part.name}] did not stop within {_STOP_GRACE_S:.0f} s; killing it")
                _signal_group(process, signal.SIGKILL)
                process.wait()


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)  # each part leads its own session, so its group is its pid


def demo_registry_files(directory: Path) -> dict[str, str]:
    """The demo registry's YAML files by name, as `POST /api/v1/registry/apply` takes them."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise UpError(f"no registry YAML files in {directory}")
    return {str(p.relative_to(directory)): p.read_text() for p in files}


DEMO_REGISTRY = Path(__file__).resolve().parents[1] / "data" / "demo"  # in the repository, beside the code
BACKFILL = "35d"  # a month of history and then some: forecasts, anomalies and dormancy need it


def run_up(
    settings: Settings, *, demo: bool, dashboard: bool, rate: float, out: Callable[[str], None]
) -> int:
    """Start Muster as one unit and supervise it until Ctrl-C or SIGTERM; the unit's exit code."""
    from muster.client import answers_at, api_url

    running = api_url(settings)
    if running and answers_at(running, settings):
        out(f"Muster is already running on {settings.data_dir} (API {running}):")
        out("stop it first, or give this one another MUSTER_DATA_DIR")
        return 1
    supervisor = Supervisor(settings, out=out)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request_stop())
    # Ctrl-C must stop us even when started from a shell that ignores SIGINT for background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        serve = supervisor.start(Part("serve", muster_command("serve")))
        wait_until(lambda: _ready(settings), part=serve, timeout=180, what="the server answered /readyz")
        if demo:
            _load_demo_registry(settings, out)
            threading.Thread(target=_feed_demo, args=(supervisor, settings, rate, out), daemon=True).start()
        if dashboard:
            board = supervisor.start(Part("dashboard", muster_command("dashboard")))
            health = f"{_dashboard_url(settings)}/_stcore/health"
            wait_until(lambda: answers(health), part=board, timeout=120, what="the dashboards answered")
        _welcome(settings, dashboard=dashboard, out=out)
        supervisor.watch()
        return 0
    except KeyboardInterrupt:
        return 0
    except UpError as exc:
        out(f"muster up: {exc}")
        return 1
    finally:
        out("stopping Muster…")
        supervisor.stop()


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - where to reach a wildcard bind


def _dashboard_url(settings: Settings) -> str:
    return f"http://{_local(settings.host)}:{settings.dashboard_port}"


def _dashboard_link(settings: Settings) -> dict[str, str]:
    """MUSTER_DASHBOARD_URL for the children: the dashboards `up` runs, unless one was set.

    Alert notifications link to `dashboard_url`; its default names port 8501, so with another
    MUSTER_DASHBOARD_PORT every link would lead to a page nobody serves.
    """
    if "dashboard_url" in settings.model_fields_set or settings.dashboard_port == 0:
        return {}
    return {"MUSTER_DASHBOARD_URL": _dashboard_url(settings)}


def _ready(settings: Settings) -> bool:
    from muster.client import api_url

    url = api_url(settings)
    return url is not None and answers(url + "/readyz")


def _welcome(settings: Settings, *, dashboard: bool, out: Callable[[str], None]) -> None:
    from muster.auth import read_admin_token
    from muster.client import api_url

    host, api = _local(settings.host), api_url(settings)
    out("")
    out(f"Muster is up; data in {settings.warehouse_path}")
    if dashboard:
        out(f"  dashboards  {_dashboard_url(settings)}")
    out(f"  API         {api}   (reference at {api}/docs)")
    out(f"  OTLP        {host}:{settings.otlp_grpc_port} (gRPC)")
    out(f"              http://{host}:{settings.otlp_http_port} (HTTP)")
    out(f"  sign in with the admin token: {read_admin_token(settings.data_dir)}")
    out("Press Ctrl-C to stop.")


def _load_demo_registry(settings: Settings, out: Callable[[str], None]) -> None:
    """Apply the demo registry, unless the registry already holds agents (never overwrite real ones)."""
    from muster.client import connect

    with connect(settings) as muster:
        if muster.get("/api/v1/agents"):
            out("the registry already holds agents: the demo registry is not applied")
            return
        changes = muster.post("/api/v1/registry/apply", demo_registry_files(DEMO_REGISTRY))
    added = changes["counts"]["add"]
    out(f"applied the demo registry from {DEMO_REGISTRY}: {added} departments, policies, budgets and agents")


def _feed_demo(supervisor: Supervisor, settings: Settings, rate: float, out: Callable[[str], None]) -> None:
    """Backfill history, price and judge it at once, then send live traffic until Muster stops."""
    from muster.client import connect

    history = ("--backfill", BACKFILL, "--ledger", str(settings.data_dir / "demo-ledger.json"))
    backfill = supervisor.start(Part("fleet", muster_command("simulate", *history), essential=False))
    if backfill.process is None or backfill.process.wait() != 0 or supervisor.stopping:
        return
    try:
        with connect(settings) as muster:
            muster.post("/api/v1/jobs/run")
            muster.post("/api/v1/findings/run")
        out("history loaded, priced and checked: every dashboard page has data now")
    except Exception as exc:  # the scheduled jobs will get there anyway
        out(f"the first job run failed ({exc}); the scheduled runs will retry")
    if not supervisor.stopping:
        live = ("--rate", str(rate), "--ledger", str(settings.data_dir / "live-ledger.json"))
        supervisor.start(Part("fleet", muster_command("simulate", *live), essential=False))
