"""The disk fills up under a running `muster serve`: exports fail retryably (gRPC UNAVAILABLE, HTTP
503 + Retry-After) with the cause named, what was acknowledged stays, and ingest resumes by itself
once space returns — exporters' retries then land exactly once.

Two ways to fill a disk without faking DuckDB, each a parameter:

- `tmpfs`: the data directory on a small tmpfs mounted for the test, grown with `mount -o remount`
  to give space back (needs the right to mount, as root in this container has; skipped otherwise);
- `rlimit`: RLIMIT_FSIZE lowered on the server process from outside (`resource.prlimit`), with
  SIGXFSZ ignored in the server so a write past the limit fails with EFBIG instead of killing it;
  raised again to give space back. Works unprivileged.
"""

from __future__ import annotations

import resource
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.faults_support import Serve, query
from tests.payloads import trace_request
from tests.test_crash import span_ids

MIB = 1024 * 1024


class TmpfsDisk:
    """A tmpfs of `size` bytes at `path`; `fill` is a no-op (it is small), `free` grows it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self) -> None:
        self.path.mkdir(parents=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(self.path)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def preexec(self) -> None:
        pass

    def fill(self, pid: int) -> None:
        pass

    def free(self, pid: int) -> None:
        subprocess.run(["mount", "-o", "remount,size=512m", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


class RlimitDisk:
    """The server may grow no file past its current largest size plus 2 MiB, until `free`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self) -> None:
        self.path.mkdir(parents=True)

    @staticmethod
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as on a full disk

    def fill(self, pid: int) -> None:
        largest = max(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (largest + 2 * MIB, resource.RLIM_INFINITY))

    def free(self, pid: int) -> None:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    def unmount(self) -> None:
        pass


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request, tmp_path: Path) -> Iterator[TmpfsDisk | RlimitDisk]:
    chosen = (TmpfsDisk if request.param == "tmpfs" else RlimitDisk)(tmp_path / "disk")
    chosen.mount()
    yield chosen
    chosen.unmount()


def body() -> bytes:
    return trace_request(200, pad=2000).SerializeToString()  # ~0.5 MB of WAL each


def test_a_full_disk_fails_exports_retryably_keeps_what_it_had_and_resumes(disk, tmp_path):
    serve = Serve(disk.path / "data", tmp_path / "serve.log")
    serve.start(preexec_fn=disk.preexec)
    try:
        disk.fill(serve.process.pid)
        acked, refused = [], []
        while len(refused) < 3:
            assert len(acked) < 200, "the disk never filled up"
            sent = body()
            try:
                serve.export(sent)
                acked.append(sent)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()  # retryable
                assert "could not store" in exc.details()
                assert "space left" in exc.details() or "too large" in exc.details(), exc.details()
                refused.append(sent)
        assert acked, "nothing was acknowledged before the disk filled"

        over_http = body()
        response = httpx.post(
            f"http://127.0.0.1:{serve.http_port}/v1/traces",
            content=over_http,
            headers={"Content-Type": "application/x-protobuf"},
            timeout=30,
        )
        assert response.status_code == 503 and response.headers.get("Retry-After"), response.text
        refused.append(over_http)
        assert serve.api("GET", "/readyz").status_code == 200  # the server itself is still up

        disk.free(serve.process.pid)
        for sent in refused:  # what exporters retry, now that there is space
            serve.export(sent)
        fresh = [body() for _ in range(3)]
        for sent in fresh:
            serve.export(sent)
        job = serve.api("POST", "/api/v1/jobs/run")
        assert job.status_code == 200, job.text
        serve.stop()

        serve.start()  # and after a restart, which replays whatever the WAL holds
        serve.stop()
    finally:
        serve.ensure_stopped()
    path = serve.data_dir / "muster.duckdb"
    expected = {span for sent in acked + refused + fresh for span in span_ids(sent)}
    stored = dict(query(path, "SELECT span_id, count(*) FROM spans GROUP BY ALL"))
    assert set(stored) == expected and set(stored.values()) == {1}  # nothing lost, nothing twice
    calls, tokens = query(path, "SELECT count(*), sum(input_tokens) FROM priced_calls")[0]
    assert calls == len(expected) and tokens == 120 * len(expected)  # every call priced once
    assert "No space left" in serve.log_text() or "too large" in serve.log_text()
