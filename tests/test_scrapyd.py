"""The crawl as a scrapyd job: scrapyd started in the project folder (eggless mode), or
anywhere with the project deployed as an egg by scrapyd-deploy; submitted and watched
with ``coles-loader schedule`` and ``coles-loader jobs``."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from colesbarcodes.db.models import Lookup
from colesbarcodes.replica.process import ReplicaProcess
from loaders.scrapyd_nodes import NodeError, ScrapydNode, parse_every, upcoming
from tests.conftest import require
from tests.helpers import (
    PROJECT,
    SCRAPYD_PASSWORD,
    SCRAPYD_USER,
    ScrapydApi,
    free_port,
    lookups,
    run_loader,
    scrapyd_process,
    write_jsonl,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.engine import Engine

FAST = [
    ("setting", "DOWNLOAD_DELAY=0"),
    ("setting", "AUTOTHROTTLE_ENABLED=False"),
    ("setting", "COLES_UPSERT_MAX_DELAY=0.5"),
]
CREDENTIALS = {"SCRAPYD_USERNAME": SCRAPYD_USER, "SCRAPYD_PASSWORD": SCRAPYD_PASSWORD}
# Names the listing crawl's scrapyd test imports from here.
USER, PASSWORD, Scrapyd = SCRAPYD_USER, SCRAPYD_PASSWORD, ScrapydApi
__all__ = ["PASSWORD", "USER", "Scrapyd", "free_port"]


@pytest.fixture
def scrapyd(tmp_path: Path, database_url: str) -> Iterator[tuple[ScrapydApi, Path, ReplicaProcess]]:
    """scrapyd started in the project folder: it runs the project without an egg."""
    pytest.importorskip("scrapyd")
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    with ReplicaProcess(products=100, seed=3) as replica:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "COLES_BASE_URL": replica.url,
            "COLES_ENRICHMENT_INBOX": str(inbox),
        }
        with scrapyd_process(tmp_path / "scrapyd", PROJECT, env) as daemon:
            yield daemon, inbox, replica


def test_a_scrapyd_job_runs_the_crawl_to_completion(
    scrapyd: tuple[ScrapydApi, Path, ReplicaProcess], engine: Engine
) -> None:
    daemon, inbox, replica = scrapyd
    assert "colesbarcodes" in daemon.call("/listprojects.json")["projects"]
    spiders = daemon.call("/listspiders.json?project=colesbarcodes")["spiders"]
    assert "coles_barcodes" in spiders
    skus = list(range(1_000_000, 1_000_040))
    write_jsonl(inbox / "skus.jsonl", [{"sku": s} for s in skus])
    job = daemon.call(
        "/schedule.json",
        [("project", "colesbarcodes"), ("spider", "coles_barcodes"), *FAST],
    )["jobid"]
    daemon.wait_finished(job)
    stored = lookups(engine)
    assert sorted(int(sku) for sku, _, _ in stored) == skus
    assert not list(inbox.glob("*.jsonl"))
    with engine.connect() as conn:
        assert set(conn.scalars(select(Lookup.job))) == {job}  # scrapyd's _job is recorded
    assert replica.stats()["by_kind"]["graphql"] > 0


# --- deployed as an egg, scheduled and watched by coles-loader ------------------------------


def deploy_egg(source: Path, scrapyd_url: str, version: str) -> subprocess.CompletedProcess[str]:
    """``scrapyd-deploy`` from a copy of the project (so building leaves this folder
    alone), to a target whose credentials come from the environment."""
    deploy = shutil.which("scrapyd-deploy", path=os.path.dirname(sys.executable))
    require(deploy is not None, "scrapyd-deploy (scrapyd-client, in the dev extras) is missing")
    assert deploy is not None
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("colesbarcodes", "loaders"):
        shutil.copytree(PROJECT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "scrapy.cfg", "README.md"):
        shutil.copy2(PROJECT / name, source / name)
    # A mark only the egg's code carries: Scrapy names the bot in its first log line.
    with (source / "colesbarcodes" / "settings.py").open("a") as settings:
        settings.write(f'\nBOT_NAME = "colesbarcodes-egg-{version}"\n')
    with (source / "scrapy.cfg").open("a") as cfg:
        cfg.write(
            f"\n[deploy:test]\nurl = {scrapyd_url}/\n"
            "username = ${SCRAPYD_USERNAME}\npassword = ${SCRAPYD_PASSWORD}\n"
        )
    return subprocess.run(
        [deploy, "test", "--version", version],
        cwd=source,
        env={**os.environ, **CREDENTIALS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def jobs_json(url: str, node: str) -> list[dict[str, Any]]:
    result = run_loader(url, "jobs", "--node", node, "--json", env=CREDENTIALS)
    assert result.exit_code == 0, result.output
    shown: list[dict[str, Any]] = json.loads(result.stdout)
    return shown


def test_a_deployed_egg_runs_the_crawl_that_coles_loader_schedules(
    tmp_path: Path, database_url: str, engine: Engine
) -> None:
    pytest.importorskip("scrapyd")
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    node_folder = tmp_path / "node"  # no scrapy.cfg here: only the deployed egg runs
    node_folder.mkdir()
    with ReplicaProcess(products=100, seed=3) as replica:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "COLES_BASE_URL": replica.url,
            "COLES_ENRICHMENT_INBOX": str(inbox),
        }
        with scrapyd_process(tmp_path / "scrapyd", node_folder, env) as daemon:
            assert daemon.call("/listprojects.json")["projects"] == []
            deployed = deploy_egg(tmp_path / "source", daemon.url, "r1-test")
            assert deployed.returncode == 0, deployed.stderr + deployed.stdout
            assert json.loads(deployed.stdout)["status"] == "ok"
            assert daemon.call("/listversions.json?project=colesbarcodes")["versions"] == [
                "r1-test"
            ]
            skus = list(range(1_000_000, 1_000_030))
            write_jsonl(inbox / "skus.jsonl", [{"sku": s} for s in skus])

            submitted = run_loader(
                database_url,
                "schedule",
                "--once",
                "--node",
                daemon.url,
                *[f"-s{value}" for _, value in FAST],
                "--json",
                env=CREDENTIALS,
            )
            assert submitted.exit_code == 0, submitted.output
            (result,) = json.loads(submitted.stdout)
            assert result["status"] == "submitted"
            job = result["job"]

            daemon.wait_finished(job)
            log = tmp_path / "scrapyd" / "logs" / "colesbarcodes" / "coles_barcodes" / f"{job}.log"
            assert "(bot: colesbarcodes-egg-r1-test)" in log.read_text()  # the egg's code ran
            (node,) = jobs_json(database_url, daemon.url)
            assert node["status"]["status"] == "ok"
            finished = node["jobs"]["finished"]
            assert [(j["id"], j["spider"]) for j in finished] == [(job, "coles_barcodes")]
            assert finished[0]["duration_s"] > 0
            table = run_loader(database_url, "jobs", "--node", daemon.url, env=CREDENTIALS)
            assert table.exit_code == 0
            assert job in table.output
            assert "coles_barcodes" in table.output

    stored = lookups(engine)
    assert sorted(int(sku) for sku, _, _ in stored) == skus
    with engine.connect() as conn:
        assert set(conn.scalars(select(Lookup.job))) == {job}
    runs = json.loads(run_loader(database_url, "runs", "--json").stdout)
    assert [(r["job"], r["finish_reason"]) for r in runs] == [(job, "finished")]
    assert runs[0]["node"]


@pytest.fixture
def plain_node(tmp_path: Path) -> Iterator[ScrapydApi]:
    """scrapyd in eggless mode on an empty inbox and a throwaway SQLite database."""
    pytest.importorskip("scrapyd")
    inbox = tmp_path / "enrichment"
    inbox.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'node.sqlite3'}",
        "COLES_ENRICHMENT_INBOX": str(inbox),
        "COLES_BASE_URL": "http://127.0.0.1:9",  # never asked: the inbox stays empty
    }
    with scrapyd_process(tmp_path / "scrapyd", PROJECT, env) as daemon:
        yield daemon


def test_repeating_schedule_submits_each_round_and_skips_a_node_still_running(
    plain_node: ScrapydApi, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    result = run_loader(
        url,
        "schedule",
        "--node",
        plain_node.url,
        "--every",
        "0.2s",
        "--max-runs",
        "2",
        "--json",
        env=CREDENTIALS,
    )
    assert result.exit_code == 0, result.output
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rounds) == 2
    first, second = rounds[0][0], rounds[1][0]
    assert first["status"] == "submitted"
    # 0.2 s later the first job is still pending or running: no second crawl on top of it.
    assert (second["status"], second["job"]) == ("skipped", first["job"])
    plain_node.wait_finished(first["job"])
    overlapping = run_loader(
        url,
        "schedule",
        "--node",
        plain_node.url,
        "--every",
        "0.1s",
        "--max-runs",
        "2",
        "--overlap",
        env=CREDENTIALS,
    )
    assert overlapping.exit_code == 0, overlapping.output
    assert overlapping.output.count("submitted coles_barcodes as job") == 2
    for node in jobs_json(url, plain_node.url):
        for state in ("pending", "running"):
            for job in node["jobs"][state]:
                plain_node.wait_finished(job["id"])


def test_bad_credentials_exit_1_with_a_message_and_never_show_the_password(
    plain_node: ScrapydApi, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    wrong = {"SCRAPYD_USERNAME": SCRAPYD_USER, "SCRAPYD_PASSWORD": "not-the-password"}
    for command in ("jobs", "schedule"):
        result = run_loader(url, command, "--node", plain_node.url, env=wrong)
        assert result.exit_code == 1
        assert "credentials refused (HTTP 401): wrong username or password" in result.output
        assert "not-the-password" not in result.output
        assert "Traceback" not in result.output
    in_url = plain_node.url.replace("//", f"//{SCRAPYD_USER}:hunter2-in-url@")
    result = run_loader(url, "jobs", "--node", in_url, "--json", env={})
    assert result.exit_code == 1
    assert "hunter2-in-url" not in result.output
    (shown,) = json.loads(result.stdout)
    assert shown == {
        "node": f"{plain_node.url}/",
        "error": f"{plain_node.url}/: credentials refused (HTTP 401): wrong username or password",
    }
    missing = run_loader(url, "jobs", "--node", plain_node.url, env={"SCRAPYD_USERNAME": ""})
    assert missing.exit_code == 1
    assert "it wants a username and password" in missing.output


def test_an_unreachable_node_is_reported_and_the_other_nodes_still_answer(
    plain_node: ScrapydApi, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_loader(
        url, "jobs", "--node", dead, "--node", plain_node.url, "--json", env=CREDENTIALS
    )
    assert result.exit_code == 1
    down, up = json.loads(result.stdout)
    assert down == {
        "node": f"{dead}/",
        "error": f"{dead}/: unreachable (connection refused): is scrapyd running there? "
        "Check --node or SCRAPYD_URL",
    }
    assert up["status"]["status"] == "ok"
    submitted = run_loader(url, "schedule", "--node", dead, env=CREDENTIALS)
    assert submitted.exit_code == 1
    assert f"Error: {dead}/: unreachable (connection refused)" in submitted.output
    assert len([line for line in submitted.stderr.splitlines() if line.strip()]) == 1
    assert "Traceback" not in submitted.output


def test_the_example_scrapyd_conf_binds_to_loopback_and_wants_credentials(
    tmp_path: Path,
) -> None:
    pytest.importorskip("scrapyd")
    config = configparser.ConfigParser()
    config.read(PROJECT / "examples" / "scrapyd.conf")
    example = config["scrapyd"]
    assert example["bind_address"] == "127.0.0.1"
    assert example["username"]
    assert example["password"]
    # The example as it is, with its folders moved under tmp_path and a free port.
    for option in ("eggs_dir", "dbs_dir", "logs_dir"):
        config["scrapyd"][option] = str(tmp_path / option)
    home = tmp_path / "home"
    home.mkdir()
    with (home / ".scrapyd.conf").open("w") as out:
        config.write(out)
    port = free_port()
    env = {**os.environ, "HOME": str(home), "SCRAPYD_HTTP_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "scrapyd"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    credentials = {"SCRAPYD_USERNAME": example["username"], "SCRAPYD_PASSWORD": example["password"]}
    try:
        node = ScrapydNode.parse(url, env=credentials)
        deadline = time.monotonic() + 30
        while True:
            try:
                status = node.daemon_status()
                break
            except NodeError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.2)
        assert status["status"] == "ok"
        with pytest.raises(NodeError, match="credentials refused"):
            ScrapydNode.parse(url, env={}).daemon_status()
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- when the schedule submits ---------------------------------------------------------------


def test_an_interval_submits_at_once_then_every_interval() -> None:
    start = datetime(2026, 11, 24, 10, 0, 7).astimezone()
    times = list(upcoming(start, parse_every("30m"), None, 3))
    assert times == [start, start + timedelta(minutes=30), start + timedelta(minutes=60)]


def test_a_cron_expression_submits_at_its_times() -> None:
    start = datetime(2026, 11, 24, 10, 5).astimezone()
    assert [t.strftime("%H:%M") for t in upcoming(start, None, "*/20 * * * *", 3)] == [
        "10:20",
        "10:40",
        "11:00",
    ]


def test_interval_and_cron_together_submit_at_whichever_comes_first() -> None:
    start = datetime(2026, 11, 24, 10, 5).astimezone()
    times = [t.strftime("%H:%M") for t in upcoming(start, parse_every("45m"), "0 * * * *", 4)]
    # at once; 45 min later (before 11:00); 11:00 (before 11:35); 45 min after 11:00.
    assert times == ["10:05", "10:50", "11:00", "11:45"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--every", "soon"], "is not an interval like 30m"),
        (["--every", "0m"], "must be longer than 0"),
        (["--cron", "every day"], "is not a cron expression"),
        (["--once", "--every", "5m"], "--once excludes --every and --cron"),
        (["-s", "DOWNLOAD_DELAY"], "'DOWNLOAD_DELAY' is not NAME=VALUE"),
        (["--node", "ftp://example.com"], "not a scrapyd URL"),
    ],
)
def test_bad_schedule_options_exit_2_with_a_message(
    tmp_path: Path, options: list[str], message: str
) -> None:
    result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", "schedule", *options)
    assert result.exit_code == 2
    assert message in result.output


def test_node_urls_keep_credentials_out_of_the_name_they_are_shown_by() -> None:
    node = ScrapydNode.parse("http://me:p%40ss@crawler-1:6800", env={})
    assert (node.url, node.username, node.password) == ("http://crawler-1:6800/", "me", "p@ss")
    from_env = ScrapydNode.parse(
        "crawler-2:6800", env={"SCRAPYD_USERNAME": "u", "SCRAPYD_PASSWORD": "p"}
    )
    assert (from_env.url, from_env.username, from_env.password) == (
        "http://crawler-2:6800/",
        "u",
        "p",
    )


def test_schedule_and_jobs_explain_themselves(tmp_path: Path) -> None:
    for command in ("schedule", "jobs", "frontier", "frontier feed", "frontier status"):
        result = run_loader(f"sqlite:///{tmp_path / 'x.db'}", *command.split(), "--help")
        assert result.exit_code == 0
        assert "Usage: " in result.output
        assert len(result.output.splitlines()) > 8
