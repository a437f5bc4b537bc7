"""The crawl as a scrapyd job: scrapyd started in the project folder (eggless mode)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import PROJECT, lookups, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

USER, PASSWORD = "crawler", "test-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scrapyd:
    def __init__(self, url: str) -> None:
        self.url = url
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def call(self, path: str, data: dict[str, str] | list[tuple[str, str]] | None = None) -> Any:
        body = None if data is None else urllib.parse.urlencode(data).encode()
        request = urllib.request.Request(self.url + path, data=body, headers=self.headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


@pytest.fixture
def scrapyd(tmp_path: Path, database_url: str) -> Iterator[tuple[Scrapyd, Path, ReplicaProcess]]:
    pytest.importorskip("scrapyd")
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / ".scrapyd.conf").write_text(
        "[scrapyd]\n"
        f"bind_address = 127.0.0.1\nhttp_port = {port}\n"
        f"username = {USER}\npassword = {PASSWORD}\n"
        f"logs_dir = {tmp_path / 'logs'}\ndbs_dir = {tmp_path / 'dbs'}\neggs_dir = {tmp_path / 'eggs'}\n"
        "poll_interval = 0.5\n"
    )
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    with ReplicaProcess(products=100, seed=3) as replica:
        env = {
            **os.environ,
            "HOME": str(home),
            "DATABASE_URL": database_url,
            "COLES_BASE_URL": replica.url,
            "COLES_ENRICHMENT_INBOX": str(inbox),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "scrapyd"],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        daemon = Scrapyd(f"http://127.0.0.1:{port}")
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    daemon.call("/daemonstatus.json")
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    time.sleep(0.2)
            yield daemon, inbox, replica
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_a_scrapyd_job_runs_the_crawl_to_completion(
    scrapyd: tuple[Scrapyd, Path, ReplicaProcess], engine: Engine
) -> None:
    daemon, inbox, replica = scrapyd
    assert "colesbarcodes" in daemon.call("/listprojects.json")["projects"]
    spiders = daemon.call("/listspiders.json?project=colesbarcodes")["spiders"]
    assert "coles_barcodes" in spiders
    skus = list(range(1_000_000, 1_000_040))
    write_jsonl(inbox / "skus.jsonl", [{"sku": s} for s in skus])
    job = daemon.call(
        "/schedule.json",
        [
            ("project", "colesbarcodes"),
            ("spider", "coles_barcodes"),
            ("setting", "DOWNLOAD_DELAY=0"),
            ("setting", "AUTOTHROTTLE_ENABLED=False"),
            ("setting", "COLES_UPSERT_MAX_DELAY=0.5"),
        ],
    )["jobid"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = daemon.call("/listjobs.json?project=colesbarcodes")
        if any(j["id"] == job for j in jobs["finished"]):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"scrapyd job {job} did not finish: {jobs}")
    stored = lookups(engine)
    assert sorted(int(sku) for sku, _, _ in stored) == skus
    assert not list(inbox.glob("*.jsonl"))
    with engine.connect() as conn:
        from sqlalchemy import select

        from colesbarcodes.db.models import Lookup

        assert set(conn.scalars(select(Lookup.job))) == {job}  # scrapyd's _job is recorded
    assert replica.stats()["by_kind"]["graphql"] > 0
