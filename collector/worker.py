"""What runs in a decode worker process besides `collector.decode`: its set-up and its warm-up.

A worker is a spawned interpreter that imports only what decoding needs. Functions handed to the
pool are pickled by reference, so the module that holds them is imported in every worker: this one
imports nothing of the server (gRPC server, uvicorn, DuckDB, the CLI), and the worker's set-up
imports the decoder.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


class _NoPandas:
    """An import finder that refuses pandas.

    pyarrow imports pandas on first use when it is installed, only to recognise pandas objects,
    which the decoder never makes; that costs each worker ~35 MiB. pyarrow takes an ImportError
    to mean "no pandas" and carries on. (A None entry in sys.modules is not enough: pyarrow's
    compiled import takes the None for the module.)
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("decode workers do not use pandas")


def start_worker() -> None:
    """Set up a decode worker: it leaves signals to the server and dies with it."""
    sys.meta_path.insert(0, _NoPandas())
    import collector.decode  # noqa: F401  (after the finder; a warm worker has the decoder loaded)

    # Ctrl-C reaches the whole process group; the server, not its workers, decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A server killed outright (SIGKILL, OOM) cannot stop its pool: workers notice and exit.
    server = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(server,), daemon=True).start()


def warm_up(_: int) -> None:
    time.sleep(0.05)  # long enough that every worker of the pool gets one of these


def _exit_when_orphaned(server: int) -> None:
    while os.getppid() == server:
        time.sleep(1)
    os._exit(0)
