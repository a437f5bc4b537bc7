"""A JavaScript bot check like Imperva's, which only a browser that runs the script passes.

Flow: a protected URL without a valid token answers 200 with the "Pardon Our Interruption" page
(plus a ``visid_incap_*`` cookie). That page loads a script carrying a fresh nonce and
parameters derived from ``HMAC(secret, nonce)``; the script iterates an LCG over them (tens of
thousands of rounds), stores ``<nonce>.<result-hex>`` in a cookie and reloads the page. The
server recomputes the result from the nonce, so a client that does not execute the script has
nothing to send, and a made-up token is rejected. A token once accepted stays valid for the
server's lifetime, or ``ttl`` seconds, or until :meth:`Challenge.rotate`.

Which cookie carries the token depends on the layout: ``reese84`` in 2024; in 2026 (Imperva's
Incapsula cookies, as a public client found them) ``incap_ses_*``, set with ``nlbi_*`` by the
script, and accepted only next to the ``visid_incap_*`` cookie the challenge response set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from importlib import resources
from typing import Literal

__all__ = [
    "COOKIE_NAME",
    "NLBI_COOKIE",
    "SCRIPT_PREFIX",
    "SESSION_COOKIE",
    "SESSION_PREFIX",
    "VISITOR_COOKIE",
    "VISITOR_PREFIX",
    "Challenge",
    "TokenState",
    "token_cookie",
]

COOKIE_NAME = "reese84"  # the token's cookie in the 2024 layout
VISITOR_COOKIE = "visid_incap_2927981"
VISITOR_PREFIX = "visid_incap_"
SESSION_COOKIE = "incap_ses_1234_2927981"  # the token's cookie in the 2026 layout
SESSION_PREFIX = "incap_ses_"
NLBI_COOKIE = "nlbi_2927981"
SCRIPT_PREFIX = "/Gone-our-Graught-but-your-did-on-bounds-Do-care-"
MODULUS = 2_147_483_647  # x * factor stays below 2**53, so JavaScript numbers are exact.
ROUNDS = 25_000
_NONCE = re.compile(r"^[0-9a-f]{24}$")
_SCRIPT_NONCE = re.compile(r'var nonce = "([0-9a-f]{24})"')
_SCRIPT_PARAMS = re.compile(r"var seed = (\d+), factor = (\d+), modulus = (\d+), rounds = (\d+);")

TokenState = Literal["absent", "invalid", "expired", "new", "valid"]


def token_cookie(layout: str) -> str:
    """The cookie the script stores its token in, for ``layout`` ("2026" or "2024")."""
    return COOKIE_NAME if layout == "2024" else SESSION_COOKIE


def _lcg(seed: int, factor: int, modulus: int, rounds: int) -> int:
    """What the script computes (the same arithmetic, exact in JavaScript numbers)."""
    x = seed
    for i in range(rounds):
        x = (x * factor + i) % modulus
    return x


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


class Challenge:
    """Mints challenge pages and scripts, and validates the cookie the script sets."""

    def __init__(self, secret: bytes | None = None, ttl: float | None = None) -> None:
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.ttl = ttl
        self._accepted: dict[str, float] = {}
        self._page = _template("bot_check.html")
        self._script = _template("challenge.js")

    def page(self) -> str:
        """The bot-check HTML, with a fresh nonce in its script URL."""
        nonce = secrets.token_hex(12)
        return self._page.replace("__SCRIPT_SRC__", f"{SCRIPT_PREFIX}/{nonce}?s=OJRfDRvP")

    def script(self, nonce: str, layout: str = "2024") -> str | None:
        """The solver script for ``nonce`` (``None`` if the nonce is malformed).

        In 2026 it also sets ``nlbi_*`` (a load-balancer cookie: present, never checked).
        """
        if not _NONCE.match(nonce):
            return None
        seed, factor = self._params(nonce)
        extra = [] if layout == "2024" else [f"{NLBI_COOKIE}={secrets.token_urlsafe(24)}"]
        return (
            self._script.replace("__COOKIE__", token_cookie(layout))
            .replace("__EXTRA_COOKIES__", json.dumps(extra))
            .replace("__NONCE__", nonce)
            .replace("__SEED__", str(seed))
            .replace("__FACTOR__", str(factor))
            .replace("__MODULUS__", str(MODULUS))
            .replace("__ROUNDS__", str(ROUNDS))
        )

    def _params(self, nonce: str) -> tuple[int, int]:
        digest = hmac.new(self.secret, nonce.encode(), hashlib.sha256).digest()
        seed = int.from_bytes(digest[:4], "big") % MODULUS
        factor = int.from_bytes(digest[4:7], "big") % (1 << 21) | 1  # < 2**21, odd
        return seed, factor

    def solve(self, nonce: str) -> str:
        """The token a browser running the script would compute (what the server expects)."""
        seed, factor = self._params(nonce)
        return f"{nonce}.{_lcg(seed, factor, MODULUS, ROUNDS):x}"

    @staticmethod
    def solve_script(script: str) -> str:
        """The token running ``script`` yields (what a browser would store), for tests."""
        nonce = _SCRIPT_NONCE.search(script)
        params = _SCRIPT_PARAMS.search(script)
        if nonce is None or params is None:
            raise ValueError("not a challenge script")
        seed, factor, modulus, rounds = map(int, params.groups())
        return f"{nonce.group(1)}.{_lcg(seed, factor, modulus, rounds):x}"

    def verify(self, token: str | None) -> TokenState:
        """Judge a token cookie's value (``new`` = valid and seen for the first time)."""
        if not token:
            return "absent"
        accepted_at = self._accepted.get(token)
        if accepted_at is not None:
            if self.ttl is None or time.monotonic() - accepted_at <= self.ttl:
                return "valid"
            return "expired"
        nonce, _, _ = token.partition(".")
        if not _NONCE.match(nonce) or not hmac.compare_digest(self.solve(nonce), token):
            return "invalid"
        self._accepted[token] = time.monotonic()
        return "new"

    def rotate(self) -> None:
        """Forget every accepted token and change the secret (all cookies become invalid)."""
        self.secret = secrets.token_bytes(32)
        self._accepted.clear()

    @staticmethod
    def visitor_cookies(layout: str = "2024") -> dict[str, str]:
        """Cookies Imperva sets on its challenge response.

        In 2024 neither is needed to pass; in 2026 ``visid_incap_*`` is (and the session
        cookie is left to the script, which puts the token in it).
        """
        cookies = {VISITOR_COOKIE: secrets.token_urlsafe(48)}
        if layout == "2024":
            cookies[SESSION_COOKIE] = secrets.token_urlsafe(40)
        return cookies
