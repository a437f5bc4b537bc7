"""scrapyd nodes as ``coles-loader schedule`` and ``coles-loader jobs`` see them.

A node is a scrapyd URL. Credentials come from the URL (``http://user:password@host:6800``)
or from ``SCRAPYD_USERNAME``/``SCRAPYD_PASSWORD``; they are sent as HTTP basic auth and
never shown: every message names a node by its URL without them. Every failure (refused
connection, timeout, credentials refused, scrapyd's own ``"status": "error"``) becomes a
:class:`NodeError` with a one-line message.

The schedule itself: an interval (``--every 30m``), a cron expression (croniter, local
time) or both, the next submission being the sooner of the two.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

__all__ = [
    "DEFAULT_NODE",
    "NodeError",
    "ScrapydNode",
    "Submission",
    "TooManyFailedRounds",
    "next_run",
    "node_jobs",
    "parse_every",
    "run_schedule",
    "submit_round",
    "upcoming",
]

# The schedule loop logs as the command that runs it.
logger = logging.getLogger("coles-loader")

DEFAULT_NODE = "http://127.0.0.1:6800/"
# Job fields shown (scrapyd may also list a job's arguments and settings, which can hold
# secrets such as a Redis URL with its password: they are never shown).
JOB_FIELDS = ("id", "spider", "project", "version", "pid", "start_time", "end_time", "log_url")


class NodeError(Exception):
    """A node could not do what was asked; ``str()`` is a message fit for people."""


@dataclass(frozen=True)
class ScrapydNode:
    """One scrapyd server: its URL (without credentials) and how to authenticate."""

    url: str
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0

    @classmethod
    def parse(cls, url: str, env: Mapping[str, str] | None = None) -> ScrapydNode:
        """A node from a URL; credentials in the URL win over the environment's."""
        env = os.environ if env is None else env
        if "://" not in url:
            url = f"http://{url}"
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NodeError(f"not a scrapyd URL: {_without_credentials(url)}")
        username = urllib.parse.unquote(parts.username) if parts.username else None
        password = urllib.parse.unquote(parts.password) if parts.password else None
        if username is None:
            username = env.get("SCRAPYD_USERNAME") or None
            password = env.get("SCRAPYD_PASSWORD") or None
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        try:
            port = parts.port
        except ValueError:
            raise NodeError(f"bad port in {_without_credentials(url)}") from None
        netloc = f"{host}:{port}" if port else host
        path = parts.path if parts.path.endswith("/") else f"{parts.path}/"
        return cls(
            urllib.parse.urlunsplit((parts.scheme, netloc, path, "", "")), username, password
        )

    def _request(self, endpoint: str, params: Sequence[tuple[str, str]] | None, post: bool) -> Any:
        import urllib.error  # with urllib.request: http.client, email and ssl, when used
        import urllib.request

        url = urllib.parse.urljoin(self.url, endpoint)
        body = None
        if params:
            encoded = urllib.parse.urlencode(list(params))
            if post:
                body = encoded.encode()
            else:
                url = f"{url}?{encoded}"
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in parse()
            url, data=body, method="POST" if post else "GET"
        )
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only, checked in parse()
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                hint = (
                    "wrong username or password"
                    if self.username is not None
                    else "it wants a username and password: set SCRAPYD_USERNAME and "
                    "SCRAPYD_PASSWORD, or put them in the URL"
                )
                raise NodeError(f"{self.url}: credentials refused (HTTP 401): {hint}") from None
            raise NodeError(f"{self.url}: {endpoint} answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise NodeError(
                f"{self.url}: unreachable ({_reason(exc.reason)}){_UNREACHABLE}"
            ) from None
        except OSError as exc:  # timeouts and refused connections included
            raise NodeError(f"{self.url}: unreachable ({_reason(exc)}){_UNREACHABLE}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise NodeError(f"{self.url}: {endpoint} did not answer JSON: not scrapyd?") from None
        if not isinstance(answer, dict):
            raise NodeError(f"{self.url}: {endpoint} gave an unexpected answer")
        if answer.get("status") == "error":
            message = str(answer.get("message", "")).strip().splitlines()
            raise NodeError(
                f"{self.url}: {endpoint} refused: {message[-1] if message else 'error'}"
            )
        return answer

    def daemon_status(self) -> dict[str, Any]:
        answer: dict[str, Any] = self._request("daemonstatus.json", None, post=False)
        return answer

    def list_jobs(self, project: str) -> dict[str, list[dict[str, Any]]]:
        """Pending, running and finished jobs of ``project``, with the safe fields only."""
        answer = self._request("listjobs.json", [("project", project)], post=False)
        return {
            state: [
                {k: job.get(k) for k in JOB_FIELDS if job.get(k) is not None}
                for job in answer.get(state, [])
            ]
            for state in ("pending", "running", "finished")
        }

    def schedule(
        self,
        project: str,
        spider: str,
        *,
        settings: Sequence[str] = (),
        arguments: Sequence[tuple[str, str]] = (),
        version: str | None = None,
    ) -> str:
        """Submit one job; its id."""
        params: list[tuple[str, str]] = [("project", project), ("spider", spider)]
        params += [("setting", setting) for setting in settings]
        params += list(arguments)
        if version:
            params.append(("_version", version))
        answer = self._request("schedule.json", params, post=True)
        return str(answer.get("jobid", ""))


_UNREACHABLE = ": is scrapyd running there? Check --node or SCRAPYD_URL"


def _reason(reason: Any) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    text = str(getattr(reason, "strerror", None) or reason)
    return text or type(reason).__name__


def _without_credentials(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//", url)


# --- When to submit ------------------------------------------------------------------------

_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> timedelta:
    """``30m``, ``2h``, ``90s``, ``1d`` or plain seconds as a positive interval."""
    match = _EVERY.match(text.lower())
    if not match:
        raise ValueError(f"{text!r} is not an interval like 30m, 2h, 90s or 1d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("the interval must be longer than 0")
    if seconds > MAX_EVERY.total_seconds():
        raise ValueError(
            f"{text!r} is longer than {MAX_EVERY.days}d: use --cron for rarer submissions"
        )
    return timedelta(seconds=seconds)


# The longest --every: a year and a day (--cron takes rarer times, such as '0 2 1 1 *').
MAX_EVERY = timedelta(days=366)


def check_cron(expression: str) -> str:
    """The expression if croniter understands it (5 fields, or 6 with seconds) and it has a
    next time (``0 0 30 2 *``, the 30th of February, has none)."""
    from croniter import CroniterError, croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a cron expression like '*/30 * * * *'")
    try:
        croniter(expression, datetime.now()).get_next(datetime)
    except CroniterError:
        raise ValueError(f"{expression!r} never comes: check its day and month") from None
    return expression


def next_run(
    after: datetime, every: timedelta | None, last: datetime | None, cron: str | None
) -> datetime:
    """The next submission after ``after``: the interval's (``last`` + ``every``, or at once
    when nothing ran yet) or the cron expression's next time, whichever is sooner."""
    candidates = []
    if every is not None:
        candidates.append(after if last is None else max(last + every, after))
    if cron is not None:
        from croniter import croniter

        candidates.append(croniter(cron, after).get_next(datetime))
    if not candidates:
        raise ValueError("neither an interval nor a cron expression")
    return min(candidates)


def upcoming(
    start: datetime, every: timedelta | None, cron: str | None, count: int
) -> Iterator[datetime]:
    """The first ``count`` submission times from ``start`` (each run taken as instant)."""
    last: datetime | None = None
    now = start
    for _ in range(count):
        when = next_run(now, every, last, cron)
        yield when
        last = when
        now = when


# --- Submitting: one round, and rounds on a schedule ---------------------------------------


@dataclass(frozen=True)
class Submission:
    """What a round submits: the spider of ``project``, with its settings and arguments, to
    every node; with ``overlap`` even to a node where the spider still has a job."""

    nodes: Sequence[ScrapydNode]
    project: str
    spider: str
    settings: Sequence[str] = ()
    arguments: Sequence[tuple[str, str]] = ()
    version: str | None = None
    overlap: bool = False


def submit_round(submission: Submission) -> list[dict[str, Any]]:
    """Submit the spider to every node; one result per node (submitted, skipped, error)."""
    project, spider = submission.project, submission.spider
    results: list[dict[str, Any]] = []
    for node in submission.nodes:
        result: dict[str, Any] = {"node": node.url, "spider": spider}
        try:
            if not submission.overlap:
                jobs = node.list_jobs(project)
                busy = [
                    (state, job)
                    for state in ("running", "pending")
                    for job in jobs[state]
                    if job.get("spider") == spider
                ]
                if busy:
                    state, job = busy[0]
                    results.append(
                        {**result, "status": "skipped", "job": job.get("id"), "state": state}
                    )
                    continue
            job_id = node.schedule(
                project,
                spider,
                settings=submission.settings,
                arguments=submission.arguments,
                version=submission.version,
            )
            results.append({**result, "status": "submitted", "job": job_id})
        except NodeError as exc:
            results.append({**result, "status": "error", "error": str(exc)})
    return results


def failed_nodes(results: Sequence[Mapping[str, Any]]) -> int:
    """How many nodes of a round did not take the job (neither submitted nor skipped)."""
    return sum(r["status"] == "error" for r in results)


class TooManyFailedRounds(Exception):
    """``max_failures`` rounds in a row had a failed node."""

    def __init__(self, failures: int) -> None:
        super().__init__(f"stopping after {failures} rounds in a row with a failed node")
        self.failures = failures


def run_schedule(
    submission: Submission,
    on_round: Callable[[list[dict[str, Any]]], None],
    *,
    every: timedelta | None,
    cron: str | None,
    max_runs: int | None = None,
    max_failures: int = 10,
) -> None:
    """Submit rounds at the times of ``every`` and/or ``cron`` (see :func:`next_run`),
    passing each round's results to ``on_round``; return after ``max_runs`` rounds,
    raise :class:`TooManyFailedRounds` after ``max_failures`` rounds in a row with a
    failed node."""
    last: datetime | None = None
    rounds = failures = 0
    while True:
        now = datetime.now().astimezone()
        when = next_run(now, every, last, cron)
        wait = (when - now).total_seconds()
        if wait > 0:
            logger.info("Next submission at %s", when.isoformat(timespec="seconds"))
            time.sleep(wait)
        results = submit_round(submission)
        on_round(results)
        last, rounds = when, rounds + 1
        failures = failures + 1 if failed_nodes(results) else 0
        if failures >= max_failures:
            raise TooManyFailedRounds(failures)
        if max_runs and rounds >= max_runs:
            return


# --- What the nodes run --------------------------------------------------------------------


def _duration(job: Mapping[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(str(job["start_time"]))
        end = datetime.fromisoformat(str(job["end_time"]))
    except (KeyError, ValueError):
        return None
    return round((end - start).total_seconds(), 1)


def node_jobs(nodes: Sequence[ScrapydNode], project: str, finished: int) -> list[dict[str, Any]]:
    """Per node: its ``status`` (daemonstatus.json) and the project's ``jobs`` (the latest
    ``finished`` finished ones, each with its ``duration_s``), or its ``error``."""
    result: list[dict[str, Any]] = []
    for node in nodes:
        entry: dict[str, Any] = {"node": node.url}
        try:
            entry["status"] = node.daemon_status()
            listed = node.list_jobs(project)
        except NodeError as exc:
            entry["error"] = str(exc)
            result.append(entry)
            continue
        listed["finished"] = sorted(
            listed["finished"], key=lambda j: str(j.get("end_time", "")), reverse=True
        )[:finished]
        for job in listed["finished"]:
            job["duration_s"] = _duration(job)
        entry["jobs"] = listed
        result.append(entry)
    return result
