"""The shared SKU frontier: one Redis stream that several crawl processes take SKUs from.

Why a stream with a consumer group (and not a list, nor scrapy-redis): a worker *reads*
an entry (``XREADGROUP``) and it stays in the group's pending list, owned by that worker,
until the worker *acknowledges* it (``XACK``), which it does only once the SKU's outcome
is committed to the database. A worker that dies leaves its entries pending; once they
have been idle longer than the claim timeout another worker takes them over
(``XAUTOCLAIM``). A live worker keeps its own entries fresh (a heartbeat), so only a dead
or stalled worker's entries go back. scrapy-redis's queues pop requests destructively:
what a killed worker held is gone.

Keys under one prefix (``colesbarcodes:frontier:coles`` by default):

- ``<prefix>:stream``: one entry per SKU to look up (fields ``sku``, ``store_id``,
  ``file``: the inbox file it came from, and ``barcode``/``name``/``brand``/``size``
  when the file gave them). Acknowledged entries are deleted, so the stream holds
  exactly the SKUs not yet done: its length reaching 0 means the frontier is drained.
- ``<prefix>:queued``: the SKUs in the stream (a set), so feeding the same SKU again
  while it waits or is in flight adds nothing.
- ``<prefix>:failed``: SKUs whose lookup failed after retries (SKU → store), fed again
  by the next feed.

Every multi-step change (feed, acknowledge, heartbeat, release) is one Lua script, so a
crash between two of its steps cannot leave the keys disagreeing. This module needs only
redis-py: the crawl side is :mod:`colesbarcodes.frontier.worker`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from colesbarcodes.frontier import DEFAULT_KEY

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "DEFAULT_KEY",
    "FRONTIER_ERRORS",
    "ConsumerStatus",
    "FeedResult",
    "Frontier",
    "FrontierEntry",
    "FrontierStatus",
    "redact_url",
]

GROUP = "workers"
# What an unreachable or misconfigured Redis raises (bad URL, refused, auth, timeout).
FRONTIER_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, ValueError, OSError)

# Optional fields an entry carries besides the SKU, in the order the feed script takes them.
_FIELDS = ("sku", "store_id", "file", "barcode", "name", "brand", "size")

_FEED = """
local added = 0
local width = tonumber(ARGV[1])
local names = {}
for i = 1, width do names[i] = ARGV[1 + i] end
for base = 2 + width, #ARGV, width do
  local sku = ARGV[base]
  if redis.call('SADD', KEYS[2], sku) == 1 then
    local fields = {}
    for i = 1, width do
      local value = ARGV[base + i - 1]
      if value ~= '' then
        fields[#fields + 1] = names[i]
        fields[#fields + 1] = value
      end
    end
    redis.call('XADD', KEYS[1], '*', unpack(fields))
    added = added + 1
  end
  redis.call('HDEL', KEYS[3], sku)
end
return added
"""

_ACK = """
local acked = 0
local count = tonumber(ARGV[2])
for i = 0, count - 1 do
  local id, sku, failed, store = ARGV[3 + i * 4], ARGV[4 + i * 4], ARGV[5 + i * 4], ARGV[6 + i * 4]
  if redis.call('XACK', KEYS[1], ARGV[1], id) == 1 then
    acked = acked + 1
    redis.call('SREM', KEYS[2], sku)
    if failed == '1' then redis.call('HSET', KEYS[3], sku, store) end
  end
  redis.call('XDEL', KEYS[1], id)
end
return acked
"""

_TOUCH = """
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""

_RECLAIM = """
local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, entry in ipairs(claimed[2]) do
  if entry[2] then
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    local deliveries = 1
    if pending[1] then deliveries = pending[1][4] end
    out[#out + 1] = {entry[1], entry[2], deliveries}
  end
end
return {claimed[1], out}
"""

_RELEASE = """
local released = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if entry[1] then
      redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
    end
    redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
    redis.call('XDEL', KEYS[1], ARGV[i])
    released = released + 1
  end
end
return released
"""


def redact_url(url: str) -> str:
    """A Redis URL fit for logs and messages: any password is replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable Redis URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]  # as written, even with a port that is no number
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclass(frozen=True, slots=True)
class FrontierEntry:
    """One SKU taken from the stream; ``deliveries`` counts how often it was handed out."""

    id: str
    sku: str
    store_id: str | None = None
    file: str | None = None
    barcode: str | None = None
    name: str | None = None
    brand: str | None = None
    size: str | None = None
    deliveries: int = 1

    @classmethod
    def from_fields(
        cls, entry_id: str, fields: Mapping[str, str] | Sequence[str], deliveries: int = 1
    ) -> FrontierEntry:
        if not isinstance(fields, dict):  # a Lua reply: [name, value, name, value, ...]
            flat = list(fields)
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
        known = {name: fields.get(name) or None for name in _FIELDS}
        return cls(id=entry_id, deliveries=int(deliveries), **known)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FeedResult:
    """What one feed did: SKUs added to the stream, and SKUs already waiting there."""

    added: int = 0
    already_queued: int = 0

    def __add__(self, other: FeedResult) -> FeedResult:
        return FeedResult(self.added + other.added, self.already_queued + other.already_queued)


@dataclass(frozen=True, slots=True)
class ConsumerStatus:
    name: str
    in_flight: int
    idle_s: float


@dataclass(frozen=True, slots=True)
class FrontierStatus:
    """Counts of one frontier: waiting (never handed out), in flight, failed, per worker."""

    key: str
    waiting: int
    in_flight: int
    failed: int
    consumers: list[ConsumerStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "waiting": self.waiting,
            "in_flight": self.in_flight,
            "failed": self.failed,
            "consumers": [
                {"name": c.name, "in_flight": c.in_flight, "idle_s": c.idle_s}
                for c in self.consumers
            ],
        }


class Frontier:
    """The SKU frontier of one prefix, over a redis-py client (responses decoded)."""

    def __init__(self, client: redis.Redis, key: str = DEFAULT_KEY, group: str = GROUP) -> None:
        # redis-py types replies as bytes | str whatever decode_responses says: the client
        # is made with decode_responses=True (from_url), so replies here are str.
        self.client: Any = client
        self.key = key
        self.group = group
        self.stream = f"{key}:stream"
        self.queued = f"{key}:queued"
        self.failed = f"{key}:failed"
        self._feed = client.register_script(_FEED)
        self._ack = client.register_script(_ACK)
        self._touch = client.register_script(_TOUCH)
        self._reclaim = client.register_script(_RECLAIM)
        self._release = client.register_script(_RELEASE)
        self._group_ready = False

    @classmethod
    def from_url(cls, url: str, key: str = DEFAULT_KEY, *, timeout: float = 10.0) -> Frontier:
        """A frontier on the Redis at ``url`` (``redis://[:password@]host:port/db``).

        ``timeout`` bounds connecting and every reply, so an unreachable Redis gives an
        error instead of a hang; blocking reads wait less than that.
        """
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=30,
        )
        return cls(client, key)

    def close(self) -> None:
        self.client.close()

    def ensure_group(self) -> None:
        """Create the stream and its consumer group if they do not exist yet."""
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    # -- feeding ----------------------------------------------------------------------------

    def feed(self, entries: Iterable[Mapping[str, str | None]], chunk: int = 1000) -> FeedResult:
        """Add SKUs (mappings with ``sku`` and any of the optional fields); a SKU already
        in the frontier is left as it is. Each chunk is added atomically."""
        self.ensure_group()
        total = FeedResult()
        batch: list[Mapping[str, str | None]] = []
        for entry in entries:
            batch.append(entry)
            if len(batch) >= chunk:
                total += self._feed_chunk(batch)
                batch = []
        if batch:
            total += self._feed_chunk(batch)
        return total

    def _feed_chunk(self, batch: Sequence[Mapping[str, str | None]]) -> FeedResult:
        args: list[str] = [str(len(_FIELDS)), *_FIELDS]
        for entry in batch:
            if not entry.get("sku"):
                raise ValueError("a frontier entry needs a SKU")
            args.extend(str(entry.get(name) or "") for name in _FIELDS)
        added = int(self._feed(keys=[self.stream, self.queued, self.failed], args=args))
        return FeedResult(added, len(batch) - added)

    def refeed_failed(self) -> FeedResult:
        """Feed again the SKUs whose lookup failed (they leave the failed list).

        They are fed as from a file of their own (``frontier-retry-<time>-<random>``), so
        that, like an inbox file's SKUs, an outcome stored for them is recognised if a
        worker dies before acknowledging it.
        """
        failed = self.client.hgetall(self.failed)
        if not failed:
            return FeedResult()
        label = f"frontier-retry-{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"
        return self.feed(
            {"sku": sku, "store_id": store or None, "file": label} for sku, store in failed.items()
        )

    # -- working ----------------------------------------------------------------------------

    def take(self, consumer: str, count: int, block_s: float | None = None) -> list[FrontierEntry]:
        """Up to ``count`` entries never handed out before, now owned by ``consumer``.

        ``block_s`` waits that long for new entries when there are none."""
        self.ensure_group()
        reply = self.client.xreadgroup(
            self.group,
            consumer,
            {self.stream: ">"},
            count=count,
            block=None if block_s is None else max(1, round(block_s * 1000)),
        )
        entries = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                if fields:
                    entries.append(FrontierEntry.from_fields(entry_id, fields))
        return entries

    def reclaim(self, consumer: str, min_idle_s: float, count: int) -> list[FrontierEntry]:
        """Take over up to ``count`` entries that have been pending, unacknowledged and
        untouched, for at least ``min_idle_s`` seconds (a dead worker's)."""
        self.ensure_group()
        start, found = "0-0", list[FrontierEntry]()
        while len(found) < count:
            start, entries = self._reclaim(
                keys=[self.stream],
                args=[
                    self.group,
                    consumer,
                    max(0, round(min_idle_s * 1000)),
                    start,
                    count - len(found),
                ],
            )
            found.extend(
                FrontierEntry.from_fields(entry_id, fields, deliveries)
                for entry_id, fields, deliveries in entries
            )
            if start == "0-0":
                break
        return found

    def touch(self, consumer: str, ids: Iterable[str]) -> int:
        """Reset the idle time of the entries ``consumer`` still owns (its heartbeat), so
        no other worker takes them back; entries taken over by another are left alone."""
        ids = list(ids)
        if not ids:
            return 0
        return int(self._touch(keys=[self.stream], args=[self.group, consumer, *ids]))

    def ack(
        self,
        done: Iterable[tuple[str, str]],
        failed: Mapping[str, str | None] | None = None,
    ) -> int:
        """Acknowledge ``(entry id, SKU)`` pairs whose outcome is stored: they leave the
        stream. SKUs in ``failed`` (SKU → store) go to the failed list for the next feed.
        Returns how many were still pending (a second acknowledgement counts nothing)."""
        failed = failed or {}
        args: list[str] = [self.group, "0"]
        count = 0
        for entry_id, sku in done:
            args += [entry_id, sku, "1" if sku in failed else "0", failed.get(sku) or ""]
            count += 1
        if not count:
            return 0
        args[1] = str(count)
        return int(self._ack(keys=[self.stream, self.queued, self.failed], args=args))

    def release(self, consumer: str, ids: Iterable[str]) -> int:
        """Give back entries ``consumer`` took but will not look up (it is stopping): each
        goes back to the stream as a new entry, for any worker to take at once."""
        ids = list(ids)
        if not ids:
            return 0
        return int(self._release(keys=[self.stream], args=[self.group, consumer, *ids]))

    def remaining(self) -> int:
        """SKUs not done yet: waiting or in flight (0: the frontier is drained)."""
        return int(self.client.xlen(self.stream))

    def pending_ids(self, consumer: str, count: int = 100_000) -> list[str]:
        """Ids of the entries ``consumer`` owns and has not acknowledged."""
        self.ensure_group()
        rows = self.client.xpending_range(
            self.stream, self.group, min="-", max="+", count=count, consumername=consumer
        )
        return [row["message_id"] for row in rows]

    def entries(self, ids: Iterable[str]) -> list[FrontierEntry]:
        """The entries of these ids still in the stream."""
        found = []
        for entry_id in ids:
            for got_id, fields in self.client.xrange(self.stream, entry_id, entry_id):
                found.append(FrontierEntry.from_fields(got_id, fields))
        return found

    def prune_consumers(self, min_idle_s: float, keep: str | None = None) -> list[str]:
        """Forget consumers that own nothing and were silent for ``min_idle_s`` seconds
        (workers that ended or died and whose entries were taken back)."""
        self.ensure_group()
        removed = []
        for consumer in self.client.xinfo_consumers(self.stream, self.group):
            name = consumer["name"]
            if name == keep or consumer["pending"] or consumer["idle"] < min_idle_s * 1000:
                continue
            self.client.xgroup_delconsumer(self.stream, self.group, name)
            removed.append(name)
        return removed

    def forget_consumer(self, consumer: str) -> None:
        """Remove ``consumer`` from the group if it owns nothing (a clean exit)."""
        self.ensure_group()
        for info in self.client.xinfo_consumers(self.stream, self.group):
            if info["name"] == consumer and not info["pending"]:
                self.client.xgroup_delconsumer(self.stream, self.group, consumer)

    def status(self) -> FrontierStatus:
        """Waiting and in-flight SKUs, failed ones, and each worker's share."""
        self.ensure_group()
        length = int(self.client.xlen(self.stream))
        consumers = [
            ConsumerStatus(c["name"], int(c["pending"]), round(int(c["idle"]) / 1000, 1))
            for c in self.client.xinfo_consumers(self.stream, self.group)
        ]
        in_flight = sum(c.in_flight for c in consumers)
        return FrontierStatus(
            key=self.key,
            waiting=max(length - in_flight, 0),
            in_flight=in_flight,
            failed=int(self.client.hlen(self.failed)),
            consumers=sorted(consumers, key=lambda c: c.name),
        )

    def delete(self) -> None:
        """Remove every key of this frontier (waiting, in-flight and failed SKUs)."""
        self.client.delete(self.stream, self.queued, self.failed)
        self._group_ready = False
