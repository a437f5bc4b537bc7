"""Run the replica in a subprocess for tests and benchmarks, and talk to its control API.

A separate process keeps the replica off the crawler's event loop and CPU, like a real site::

    with ReplicaProcess(products=500, challenge=True) as replica:
        crawl(replica.url)
        assert replica.stats()["by_sku"]["1000001"] == 1
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

__all__ = ["ReplicaProcess"]

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class ReplicaProcess:
    """``python -m colesbarcodes.replica`` as a context manager; ``url`` once started.

    ``layout`` ("2026", the replica's default, or "2024") and ``challenge`` are shortcuts for
    their options; any other option goes in ``args`` (e.g. ``["--max-aliases", "5"]``).
    """

    def __init__(
        self,
        *,
        products: int = 1000,
        seed: int = 1,
        catalogue: str | Path | None = None,
        challenge: bool = False,
        layout: str | None = None,
        args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        command = [sys.executable, "-m", "colesbarcodes.replica", "--port", "0"]
        if catalogue is not None:
            command += ["--catalogue", str(catalogue)]
        else:
            command += ["--products", str(products), "--seed", str(seed)]
        if challenge:
            command.append("--challenge")
        if layout is not None:
            command += ["--layout", layout]
        self.command = [*command, *args]
        self.startup_timeout = startup_timeout
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    def start(self) -> str:
        """Start the server and return its base URL (raises if it does not come up)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        # This interpreter running the replica's module, with arguments built above.
        self._process = subprocess.Popen(  # noqa: S603
            self.command, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        if self._process.stdout is None:
            raise RuntimeError("the replica's output is not a pipe")
        deadline = time.monotonic() + self.startup_timeout
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._process.stdout], [], [], max(remaining, 0))
            if not ready:
                self.stop()
                raise RuntimeError(f"replica did not start within {self.startup_timeout}s")
            chunk = os.read(self._process.stdout.fileno(), 1)
            if not chunk:
                error = self._error_output()
                self.stop()
                raise RuntimeError(f"replica exited before listening: {error}")
            line += chunk
        self.url = line.decode().strip()
        return self.url

    def _error_output(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return str(self._stderr.read().decode(errors="replace")[-2000:])

    def stop(self) -> None:
        """Terminate the server (kill it if it does not exit) and release pipes and files."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> ReplicaProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control API ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own http:// URL
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change :class:`~colesbarcodes.replica.server.ReplicaConfig` fields; the new config."""
        result: dict[str, Any] = self._call("POST", "/__replica__/config", changes)
        return result

    def config(self) -> dict[str, Any]:
        """The current config."""
        result: dict[str, Any] = self._call("GET", "/__replica__/config")
        return result

    def stats(self) -> dict[str, Any]:
        """The ``/__replica__/stats`` document."""
        result: dict[str, Any] = self._call("GET", "/__replica__/stats")
        return result

    def reset_stats(self) -> None:
        """Zero the stats (and the every-Nth fault counters)."""
        self._call("POST", "/__replica__/reset-stats", {})

    @property
    def woolworths_url(self) -> str:
        """Where the replica serves Woolworths (``WOOLWORTHS_BASE_URL``)."""
        return self.url + "/woolworths"

    def woolworths_configure(self, **changes: Any) -> dict[str, Any]:
        """Change the Woolworths site's switches (``WoolworthsConfig``); the new config."""
        result: dict[str, Any] = self._call("POST", "/woolworths/__replica__/config", changes)
        return result

    def woolworths_stats(self) -> dict[str, Any]:
        """What was asked of the Woolworths site."""
        result: dict[str, Any] = self._call("GET", "/woolworths/__replica__/stats")
        return result

    def woolworths_reset_stats(self) -> None:
        """Zero the Woolworths site's counts."""
        self._call("POST", "/woolworths/__replica__/reset-stats", {})

    def revoke_cookies(self) -> None:
        """Make every bot-check cookie handed out so far invalid."""
        self._call("POST", "/__replica__/revoke-cookies", {})
