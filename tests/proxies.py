"""Real forward proxies for tests: Debian's tinyproxy, started on a free port of 127.0.0.1.

The crawl rotates exits (``COLES_PROXIES``) and the site blocks by client address. Every
address in 127.0.0.0/8 is this machine, so a tinyproxy whose ``Bind`` is 127.0.0.2 makes a
server on 127.0.0.1 see its client as 127.0.0.2: a real exit, without the internet::

    with forward_proxy("127.0.0.2", "alice", "s3cret") as proxy:
        crawl(settings={"COLES_PROXIES": proxy.url})

tinyproxy runs in the foreground (``-d``) with a config file in a temporary directory, and is
stopped (and the directory removed) when the context manager exits.

tinyproxy 1.11.1 (Debian 12) answers a request *without* credentials with 407, but a request
with *wrong* credentials with 401 and ``WWW-Authenticate`` (tinyproxy issue #532, fixed after
1.11). Clients and tests must treat both as "the proxy refused the credentials".
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["ForwardProxy", "ProxyStartError", "forward_proxy", "tinyproxy_path"]

LISTEN_HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# A crawl opens a connection per concurrent request (tinyproxy runs a thread per client).
MAX_CLIENTS = 200


class ProxyStartError(RuntimeError):
    """tinyproxy is missing, cannot use the exit address, or did not start listening."""


def tinyproxy_path() -> str | None:
    """The tinyproxy binary (``COLES_TINYPROXY_PATH``, else on PATH or /usr/sbin), or None."""
    configured = os.environ.get("COLES_TINYPROXY_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("tinyproxy") or shutil.which("tinyproxy", path="/usr/bin:/usr/sbin")


@dataclass(frozen=True)
class ForwardProxy:
    """A running forward proxy: where to send requests, and where they leave from."""

    host: str
    port: int
    exit_address: str
    username: str | None = None
    password: str | None = None
    pid: int = 0  # the tinyproxy process, so a test can see it gone afterwards

    @property
    def url_without_credentials(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The proxy URL with credentials (quoted), as ``COLES_PROXIES`` and Scrapy take it."""
        if self.username is None:
            return self.url_without_credentials
        credentials = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}"
        return f"http://{credentials}@{self.host}:{self.port}"

    @property
    def proxy_authorization(self) -> str | None:
        """The ``Proxy-Authorization`` header value for hand-made requests (None without auth)."""
        if self.username is None:
            return None
        token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
        return f"Basic {token}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LISTEN_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_exit_address(exit_address: str) -> None:
    """Fail early and clearly: tinyproxy only logs a failed Bind and then refuses requests."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((exit_address, 0))
    except OSError as exc:
        raise ProxyStartError(f"cannot use {exit_address} as an exit address: {exc}") from exc


def _config(
    directory: Path, port: int, exit_address: str, username: str | None, password: str | None
) -> str:
    if (username is None) != (password is None):
        raise ValueError("give both a username and a password, or neither")
    for name, value in (("username", username), ("password", password)):
        if value is not None and (not value or any(c.isspace() or c == '"' for c in value)):
            raise ValueError(f"tinyproxy {name}s are single words without quotes: {value!r}")
    lines = [
        f"Port {port}",
        f"Listen {LISTEN_HOST}",
        f"Bind {exit_address}",
        f"Allow {LISTEN_HOST}",
        f'PidFile "{directory / "tinyproxy.pid"}"',
        f'LogFile "{directory / "tinyproxy.log"}"',
        "LogLevel Connect",
        f"MaxClients {MAX_CLIENTS}",
        "Timeout 60",
    ]
    if username is not None:
        lines.append(f"BasicAuth {username} {password}")
    return "\n".join(lines) + "\n"


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection((LISTEN_HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _output(directory: Path) -> str:
    parts = []
    for name in ("tinyproxy.stderr", "tinyproxy.log"):
        with contextlib.suppress(OSError):
            parts.append((directory / name).read_text(errors="replace")[-2000:])
    return "\n".join(part for part in parts if part.strip())


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (tinyproxy shuts down cleanly), SIGKILL if it lingers; always reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(
    binary: str, directory: Path, exit_address: str, username: str | None, password: str | None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start tinyproxy on a free port; another try on a new port if the port was taken."""
    config_file = directory / "tinyproxy.conf"
    error = ""
    for _ in range(3):
        port = _free_port()
        config_file.write_text(_config(directory, port, exit_address, username, password))
        with (directory / "tinyproxy.stderr").open("wb") as stderr:
            process = subprocess.Popen(
                [binary, "-d", "-c", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _accepts_connections(port):
                return process, port
            time.sleep(0.05)
        _stop(process)
        error = _output(directory)
    raise ProxyStartError(f"tinyproxy did not start listening on {LISTEN_HOST}:\n{error}")


@contextlib.contextmanager
def forward_proxy(
    exit_address: str, username: str | None = None, password: str | None = None
) -> Iterator[ForwardProxy]:
    """A running tinyproxy on 127.0.0.1 whose outgoing connections leave from ``exit_address``.

    With ``username`` (and ``password``), requests without those Basic credentials are refused.
    """
    binary = tinyproxy_path()
    if binary is None:
        raise ProxyStartError("tinyproxy is not installed (make system-packages)")
    _check_exit_address(exit_address)
    with tempfile.TemporaryDirectory(prefix="colesbarcodes-tinyproxy-") as name:
        process, port = _start(binary, Path(name), exit_address, username, password)
        try:
            yield ForwardProxy(LISTEN_HOST, port, exit_address, username, password, process.pid)
        finally:
            _stop(process)
