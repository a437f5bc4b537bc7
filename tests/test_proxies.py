"""The real forward proxies of the tests (tinyproxy): each one is an exit of its own.

Every address in 127.0.0.0/8 is this machine, so a proxy bound to 127.0.0.2 for its outgoing
connections makes a server on 127.0.0.1 see the client as 127.0.0.2 — what the crawl's exit
rotation needs, without the internet.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import pytest

from tests.conftest import require
from tests.proxies import ProxyStartError, forward_proxy, tinyproxy_path

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.proxies import ForwardProxy

pytestmark = pytest.mark.proxy


@dataclass
class EchoServer:
    """A plain HTTP server on 127.0.0.1 that answers with who asked, and remembers it."""

    url: str
    seen: list[dict[str, str | None]] = field(default_factory=list)


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    server_seen: list[dict[str, str | None]] = []

    class Echo(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record = {
                "remote": self.client_address[0],
                "via": self.headers.get("Via"),
                "proxy_authorization": self.headers.get("Proxy-Authorization"),
                "path": self.path,
            }
            server_seen.append(record)
            body = json.dumps(record).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Keep the test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield EchoServer(f"http://127.0.0.1:{server.server_address[1]}", server_seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def tinyproxy() -> str:
    path = tinyproxy_path()
    require(path is not None, "tinyproxy is not installed (make system-packages)")
    assert path is not None
    return path


def get_through(
    proxy: ForwardProxy, url: str, authorization: str | None
) -> tuple[int, dict[str, str]]:
    """GET ``url`` through ``proxy`` by hand (no environment proxy settings can interfere)."""
    conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=10)
    try:
        headers = {"Proxy-Authorization": authorization} if authorization else {}
        conn.request("GET", url, headers=headers)
        response = conn.getresponse()
        body = response.read()
        document = json.loads(body) if response.status == 200 else {}
        return response.status, document
    finally:
        conn.close()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_a_request_through_each_proxy_reaches_the_server_from_that_proxys_exit_address(
    forward_proxies: list[ForwardProxy], echo_server: EchoServer
) -> None:
    assert [p.exit_address for p in forward_proxies] == ["127.0.0.2", "127.0.0.3"]
    for proxy in forward_proxies:
        status, seen = get_through(proxy, f"{echo_server.url}/hello", proxy.proxy_authorization)
        assert status == 200
        assert seen["remote"] == proxy.exit_address
        assert "tinyproxy" in (seen["via"] or "")
        assert seen["proxy_authorization"] is None  # the credentials stop at the proxy


def test_the_two_proxies_have_distinct_credentials_and_urls_that_carry_them(
    forward_proxies: list[ForwardProxy],
) -> None:
    first, second = forward_proxies
    assert first.username != second.username and first.password != second.password
    for proxy in forward_proxies:
        assert proxy.url == (f"http://{proxy.username}:{proxy.password}@127.0.0.1:{proxy.port}")
        assert proxy.url_without_credentials == f"http://127.0.0.1:{proxy.port}"


def test_a_request_without_credentials_is_refused_with_407_and_never_reaches_the_server(
    forward_proxies: list[ForwardProxy], echo_server: EchoServer
) -> None:
    status, _ = get_through(forward_proxies[0], f"{echo_server.url}/anonymous", None)
    assert status == 407
    assert echo_server.seen == []


def test_wrong_credentials_are_refused_and_never_reach_the_server(
    forward_proxies: list[ForwardProxy], echo_server: EchoServer
) -> None:
    first, second = forward_proxies
    assert first.username is not None and second.password is not None
    status, _ = get_through(first, f"{echo_server.url}/wrong", basic(first.username, "wrong"))
    # tinyproxy 1.11.1 (Debian 12) says 401 for wrong credentials (its issue #532); later 407.
    assert status in (401, 407)
    # one proxy's password does not open the other
    status, _ = get_through(
        first, f"{echo_server.url}/other", basic(first.username, second.password)
    )
    assert status in (401, 407)
    assert echo_server.seen == []


def test_a_proxy_without_credentials_lets_any_local_client_through(
    tinyproxy: str, echo_server: EchoServer
) -> None:
    with forward_proxy("127.0.0.4") as proxy:
        assert proxy.url == proxy.url_without_credentials
        assert proxy.proxy_authorization is None
        status, seen = get_through(proxy, echo_server.url, None)
    assert status == 200
    assert seen["remote"] == "127.0.0.4"


def test_the_proxy_process_is_gone_and_its_port_closed_after_the_context_manager_exits(
    tinyproxy: str,
) -> None:
    with forward_proxy("127.0.0.2", "someone", "secret") as proxy:
        assert proxy.pid > 0
        os.kill(proxy.pid, 0)  # running
    with pytest.raises(ProcessLookupError):
        os.kill(proxy.pid, 0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", proxy.port), timeout=1):
        pass


def test_an_exit_address_this_machine_does_not_have_is_a_clear_error(tinyproxy: str) -> None:
    with pytest.raises(ProxyStartError, match="exit address"), forward_proxy("192.0.2.1"):
        pass


SPIDER = textwrap.dedent(
    """
    import scrapy

    class Through(scrapy.Spider):
        name = "through"

        def __init__(self, target, proxy, **kwargs):
            super().__init__(**kwargs)
            self.target, self.proxy = target, proxy

        async def start(self):
            yield scrapy.Request(self.target, meta={"proxy": self.proxy})

        def parse(self, response):
            yield response.json()
    """
)


def test_a_scrapy_request_with_the_proxy_url_leaves_from_its_exit(
    forward_proxies: list[ForwardProxy], echo_server: EchoServer, tmp_path: Path
) -> None:
    """Scrapy's HttpProxyMiddleware sends the URL's credentials the way tinyproxy expects."""
    spider = tmp_path / "through.py"
    spider.write_text(SPIDER)
    out = tmp_path / "items.json"
    proxy = forward_proxies[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "runspider",
            str(spider),
            "-a",
            f"target={echo_server.url}/scrapy",
            "-a",
            f"proxy={proxy.url}",
            "-O",
            str(out),
            "-s",
            "LOG_LEVEL=INFO",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    items = json.loads(out.read_text())
    assert [item["remote"] for item in items] == [proxy.exit_address]
    assert proxy.password is not None and proxy.password not in result.stderr
