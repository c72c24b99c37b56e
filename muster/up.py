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

__all__ = ["Part", "Supervisor", "UpError", "wait_until"]

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
        self._out = out
        self.parts: list[Part] = []
        self._stopping = threading.Event()

    def start(self, part: Part) -> Part:
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

    def watch(self) -> None:
        """Block until an essential part exits (UpError) or `stop` is called."""
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
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._out(f"[{part.name}] did not stop within {_STOP_GRACE_S:.0f} s; killing it")
                process.kill()
                process.wait()


def demo_registry_files(directory: Path) -> dict[str, str]:
    """The demo registry's YAML files by name, as `POST /api/v1/registry/apply` takes them."""
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
    if not files:
        raise UpError(f"no registry YAML files in {directory}")
    return {str(p.relative_to(directory)): p.read_text() for p in files}
