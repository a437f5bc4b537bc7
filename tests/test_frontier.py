"""The shared SKU frontier on a real Redis: the stream's rules, the feed command, and
crawl processes sharing it (one of them killed) against the replica site."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from colesbarcodes.db.engine import session_factory
from colesbarcodes.db.lookups import LookupRow, record_lookups
from colesbarcodes.db.models import Lookup
from colesbarcodes.replica.catalogue import Catalogue
from colesbarcodes.replica.process import ReplicaProcess
from tests.helpers import PROJECT, crawl_command, crawl_env, run_loader, write_jsonl

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from colesbarcodes.frontier.stream import Frontier


def sku_entries(skus: list[int], file: str = "skus.jsonl") -> list[dict[str, str | None]]:
    return [{"sku": str(s), "file": file} for s in skus]


# --- the stream's rules ---------------------------------------------------------------------


def test_feeding_the_same_skus_again_adds_nothing(frontier: Frontier) -> None:
    first = frontier.feed(sku_entries(list(range(100))))
    again = frontier.feed(sku_entries(list(range(50, 150))))
    assert (first.added, first.already_queued) == (100, 0)
    assert (again.added, again.already_queued) == (50, 50)
    assert frontier.remaining() == 150
    assert frontier.status().waiting == 150


def test_a_taken_sku_stays_in_flight_until_acknowledged_then_leaves(frontier: Frontier) -> None:
    frontier.feed(sku_entries([1, 2, 3]))
    taken = frontier.take("worker-a", 2)
    assert [e.sku for e in taken] == ["1", "2"]
    assert [e.sku for e in frontier.take("worker-b", 5)] == ["3"]  # never handed out twice
    status = frontier.status()
    assert (status.waiting, status.in_flight) == (0, 3)
    assert {c.name: c.in_flight for c in status.consumers} == {"worker-a": 2, "worker-b": 1}
    assert frontier.ack([(e.id, e.sku) for e in taken]) == 2
    assert frontier.ack([(e.id, e.sku) for e in taken]) == 0  # a second ack changes nothing
    assert frontier.remaining() == 1
    # Once done, a SKU may be fed again (a later request for it).
    assert frontier.feed(sku_entries([1])).added == 1


def test_an_entry_idle_past_the_claim_timeout_goes_to_another_worker(frontier: Frontier) -> None:
    frontier.feed(sku_entries([10, 11]))
    dead = frontier.take("dead-worker", 2)
    assert frontier.reclaim("survivor", min_idle_s=0.3, count=10) == []  # not idle long enough
    time.sleep(0.4)
    taken_back = frontier.reclaim("survivor", min_idle_s=0.3, count=10)
    assert [(e.id, e.sku, e.deliveries) for e in taken_back] == [(e.id, e.sku, 2) for e in dead]
    assert frontier.pending_ids("dead-worker") == []
    assert frontier.pending_ids("survivor") == [e.id for e in dead]


def test_a_live_workers_heartbeat_keeps_its_entries(frontier: Frontier) -> None:
    frontier.feed(sku_entries([20, 21]))
    mine = frontier.take("alive", 2)
    for _ in range(3):
        time.sleep(0.2)
        assert frontier.touch("alive", [e.id for e in mine]) == 2
    assert frontier.reclaim("other", min_idle_s=0.3, count=10) == []
    time.sleep(0.4)
    assert len(frontier.reclaim("other", min_idle_s=0.3, count=10)) == 2
    # Taken over: the first worker's heartbeat no longer claims them back.
    assert frontier.touch("alive", [e.id for e in mine]) == 0
    assert len(frontier.pending_ids("other")) == 2


def test_failed_skus_are_fed_again_by_the_next_feed(frontier: Frontier) -> None:
    frontier.feed([{"sku": "30", "store_id": "0601"}, {"sku": "31"}])
    taken = frontier.take("worker", 2)
    frontier.ack([(e.id, e.sku) for e in taken], failed={"30": "0601"})
    assert (frontier.remaining(), frontier.status().failed) == (0, 1)
    assert frontier.refeed_failed().added == 1
    (again,) = frontier.take("worker", 5)
    assert (again.sku, again.store_id) == ("30", "0601")
    assert again.file is not None and again.file.startswith("frontier-retry-")
    assert frontier.status().failed == 0


def test_released_entries_go_back_for_any_worker_to_take(frontier: Frontier) -> None:
    frontier.feed(sku_entries([40, 41, 42]))
    taken = frontier.take("stopping", 3)
    assert frontier.release("stopping", [e.id for e in taken[1:]]) == 2
    assert frontier.release("someone-else", [taken[0].id]) == 0  # only the owner gives back
    assert sorted(e.sku for e in frontier.take("next", 10)) == ["41", "42"]
    assert frontier.remaining() == 3


# --- coles-loader frontier feed / status ------------------------------------------------------


def test_feed_archives_each_file_once_its_skus_are_in_the_stream(
    frontier: Frontier, redis_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "barcode_enrichment_inbox"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1}, {"sku": 2}, {"sku": 2}, "not json"])
    write_jsonl(
        inbox / "b.jsonl", [{"sku": 2}, {"sku": 3, "store_id": "0601", "barcode": "9300633600082"}]
    )
    args = ["frontier", "feed", "--redis", redis_url, "--key", frontier.key, "--inbox", str(inbox)]
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = run_loader(url, *args, "--json")
    assert result.exit_code == 0, result.output
    fed = json.loads(result.stdout)
    assert (fed["added"], fed["already_queued"]) == (3, 1)
    assert [(f["name"], f["skus"], f["quarantined"]) for f in fed["files"]] == [
        ("a.jsonl", 2, 1),
        ("b.jsonl", 2, 0),
    ]
    assert not list(inbox.glob("*.jsonl"))
    assert sorted(p.name.split("--", 1)[1] for p in (inbox / "archive").glob("*.jsonl")) == [
        "a.jsonl",
        "b.jsonl",
    ]
    entries = {e.sku: e for e in frontier.take("reader", 10)}
    assert sorted(entries) == ["1", "2", "3"]
    assert entries["3"].store_id == "0601"
    assert entries["3"].barcode == "9300633600082"  # a barcode the file gave travels along
    assert entries["1"].file is not None and entries["1"].file.endswith("--a.jsonl")

    status = run_loader(url, "frontier", "status", "--redis", redis_url, "--key", frontier.key)
    assert status.exit_code == 0
    assert "in_flight  3" in status.output
    assert "reader" in status.output
    again = run_loader(url, *args)
    assert again.exit_code == 0
    assert "Fed 0 SKUs" in again.output


def test_feed_with_redis_unreachable_exits_1_and_leaves_the_inbox_alone(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_jsonl(inbox / "a.jsonl", [{"sku": 1}])
    result = run_loader(
        f"sqlite:///{tmp_path / 'x.db'}",
        "frontier",
        "feed",
        "--redis",
        "redis://:s3cret@127.0.0.1:1/0",
        "--inbox",
        str(inbox),
    )
    assert result.exit_code == 1
    assert "Error: cannot use the frontier at redis://:***@127.0.0.1:1/0" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
    assert (inbox / "a.jsonl").exists()


# --- crawl processes on one frontier ----------------------------------------------------------


def frontier_crawl(
    frontier: Frontier, redis_url: str, site: str, spill: Path, *args: str
) -> list[str]:
    spill.mkdir(exist_ok=True)
    return crawl_command(
        spill,
        site,
        "-s",
        f"COLES_FRONTIER_URL={redis_url}",
        "-s",
        f"COLES_FRONTIER_KEY={frontier.key}",
        "-s",
        "COLES_FRONTIER_POLL=0.2",
        *args,
    )


def stats_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def lookups_per_sku(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(Lookup.sku, func.count()).group_by(Lookup.sku))
        return Counter({sku: count for sku, count in rows})


def test_three_workers_one_killed_store_every_sku_once_and_ask_the_site_at_most_once(
    frontier: Frontier, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    count = 3000
    skus = [p.sku for p in Catalogue.generate(count, seed=5)]
    inbox = tmp_path / "barcode_enrichment_inbox"
    inbox.mkdir()
    write_jsonl(inbox / "skus.jsonl", [{"sku": s} for s in skus])
    database_url = engine.url.render_as_string(hide_password=False)
    fed = run_loader(
        database_url,
        *("frontier", "feed", "--redis", redis_url, "--key", frontier.key),
        *("--inbox", str(inbox)),
    )
    assert fed.exit_code == 0, fed.output
    assert frontier.remaining() == count

    with (
        ReplicaProcess(products=count, seed=5, args=["--delay-ms", "5"]) as replica,
        contextlib.ExitStack() as logs,
    ):
        workers: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        for job in ("w1", "w2", "w3"):
            stats = tmp_path / f"{job}.json"
            command = frontier_crawl(
                frontier,
                redis_url,
                replica.url,
                tmp_path / f"spill-{job}",
                *("-a", f"_job={job}"),
                *("-s", "COLES_FRONTIER_CLAIM_TIMEOUT=4"),
                *("-s", "CONCURRENT_REQUESTS=8", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8"),
            )
            log = logs.enter_context((tmp_path / f"{job}.log").open("wb"))
            process = subprocess.Popen(
                command,
                cwd=PROJECT,
                env=crawl_env(database_url, stats),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            workers[job] = (process, stats)

        victim = workers["w2"][0]
        deadline = time.monotonic() + 60
        while True:  # kill w2 once it has committed some outcomes
            with engine.connect() as conn:
                stored = conn.scalar(select(func.count()).where(Lookup.job == "w2"))
            if stored and stored >= 100:
                break
            assert victim.poll() is None, (tmp_path / "w2.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "w2 stored nothing within 60 s"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        consumer = f"{socket.gethostname()}:{victim.pid}:w2"
        held = {e.sku for e in frontier.entries(frontier.pending_ids(consumer))}

        for job in ("w1", "w3"):
            process, _ = workers[job]
            assert process.wait(timeout=120) == 0, (tmp_path / f"{job}.log").read_text()[-3000:]
        asked = Counter({int(k): v for k, v in replica.stats()["by_sku_kind"]["graphql"].items()})

    # w2 died holding SKUs (in flight, or stored but not acknowledged): they were taken back.
    assert held
    survivors = [stats_of(workers[job][1]) for job in ("w1", "w3")]
    assert sum(s.get("frontier/reclaimed", 0) for s in survivors) >= len(held)
    assert all(s["finish_reason"] == "finished" for s in survivors)
    # Every SKU has exactly one stored lookup, whoever stored it.
    per_sku = lookups_per_sku(engine)
    assert set(per_sku) == {str(s) for s in skus}
    assert set(per_sku.values()) == {1}
    # The site was asked for each SKU at most once, but for those w2 held when it died.
    assert set(asked) <= set(skus)
    twice = {sku for sku, n in asked.items() if n > 1}
    assert all(n <= 2 for n in asked.values())
    assert {str(s) for s in twice} <= held
    assert sum(asked.values()) <= count + len(held)
    # The frontier is drained.
    status = frontier.status()
    assert (status.waiting, status.in_flight, status.failed) == (0, 0, 0)


def test_a_sku_a_dead_worker_stored_but_never_acknowledged_is_not_looked_up_again(
    frontier: Frontier, redis_url: str, engine: Engine, tmp_path: Path
) -> None:
    skus = [p.sku for p in Catalogue.generate(30, seed=6)]
    frontier.feed(sku_entries(skus, file="claimed--skus.jsonl"))
    dead = frontier.take("dead-worker", 5)
    committed = dead[:2]  # the dead worker had stored these two, then died before XACK
    with session_factory(engine).begin() as session:
        record_lookups(
            session,
            [
                LookupRow(
                    "coles",
                    e.sku,
                    "no_barcode",
                    file=e.file,
                    job="dead",
                    looked_up_at=datetime.now(UTC),
                )
                for e in committed
            ],
            [],
            source="test",
        )
    database_url = engine.url.render_as_string(hide_password=False)
    stats_file = tmp_path / "stats.json"
    with ReplicaProcess(products=30, seed=6) as replica:
        result = subprocess.run(
            frontier_crawl(
                frontier,
                redis_url,
                replica.url,
                tmp_path / "spill",
                *("-s", "COLES_FRONTIER_CLAIM_TIMEOUT=1"),
            ),
            cwd=PROJECT,
            env=crawl_env(database_url, stats_file),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        asked = replica.stats()["by_sku_kind"]["graphql"]
    assert result.returncode == 0, result.stderr[-3000:]
    stats = stats_of(stats_file)
    assert stats["frontier/reclaimed"] == 5
    assert stats["prefill/resumed"] == 2
    assert not {e.sku for e in committed} & set(asked)  # no request for what was stored
    assert sorted(asked) == sorted(str(s) for s in skus if str(s) not in {e.sku for e in committed})
    assert set(asked.values()) == {1}
    per_sku = lookups_per_sku(engine)
    assert set(per_sku) == {str(s) for s in skus}
    assert set(per_sku.values()) == {1}
    assert frontier.remaining() == 0


def test_an_unreachable_frontier_closes_the_crawl_cleanly(tmp_path: Path) -> None:
    stats_file = tmp_path / "stats.json"
    result = subprocess.run(
        crawl_command(
            tmp_path / "spill",
            "http://127.0.0.1:9",
            "-a",
            "frontier=redis://:s3cret@127.0.0.1:1/0",
        ),
        cwd=PROJECT,
        env=crawl_env(f"sqlite:///{tmp_path / 'x.db'}", stats_file),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    stats = stats_of(stats_file)
    assert stats["finish_reason"].startswith("frontier_unavailable: redis://:***@127.0.0.1:1/0"), (
        result.stderr[-3000:]
    )
    log = result.stdout + result.stderr
    assert "s3cret" not in log
    assert "Traceback" not in log
