"""A JavaScript bot check like Imperva's, which only a browser that runs the script passes.

Flow: a protected URL without a valid ``reese84`` cookie answers 200 with the "Pardon Our
Interruption" page (plus a ``visid_incap_*`` cookie). That page loads a script carrying a fresh
nonce and parameters derived from ``HMAC(secret, nonce)``; the script iterates an LCG over them
(tens of thousands of rounds), sets ``reese84=<nonce>.<result-hex>`` and reloads the page. The
server recomputes the result from the nonce, so a client that does not execute the script has
nothing to send, and a made-up token is rejected. A token once accepted stays valid for the
server's lifetime, or ``ttl`` seconds, or until :meth:`Challenge.rotate`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from importlib import resources
from typing import Literal

__all__ = ["COOKIE_NAME", "SCRIPT_PREFIX", "VISITOR_COOKIE", "Challenge", "TokenState"]

COOKIE_NAME = "reese84"
VISITOR_COOKIE = "visid_incap_2927981"
SESSION_COOKIE = "incap_ses_1234_2927981"
SCRIPT_PREFIX = "/Gone-our-Graught-but-your-did-on-bounds-Do-care-"
MODULUS = 2_147_483_647  # x * factor stays below 2**53, so JavaScript numbers are exact.
ROUNDS = 25_000
_NONCE = re.compile(r"^[0-9a-f]{24}$")

TokenState = Literal["absent", "invalid", "expired", "new", "valid"]


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")


class Challenge:
    """Mints challenge pages and scripts, and validates the cookie the script sets."""

    def __init__(self, secret: bytes | None = None, ttl: float | None = None) -> None:
        self.secret = secret if secret is not None else secrets.token_bytes(32)
        self.ttl = ttl
        self._accepted: dict[str, float] = {}
        self._page = _template("bot_check.html")
        self._script = _template("challenge.js").replace("__COOKIE__", COOKIE_NAME)

    def page(self) -> str:
        """The bot-check HTML, with a fresh nonce in its script URL."""
        nonce = secrets.token_hex(12)
        return self._page.replace("__SCRIPT_SRC__", f"{SCRIPT_PREFIX}/{nonce}?s=OJRfDRvP")

    def script(self, nonce: str) -> str | None:
        """The solver script for ``nonce`` (``None`` if the nonce is malformed)."""
        if not _NONCE.match(nonce):
            return None
        seed, factor = self._params(nonce)
        return (
            self._script.replace("__NONCE__", nonce)
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
        x = seed
        for i in range(ROUNDS):
            x = (x * factor + i) % MODULUS
        return f"{nonce}.{x:x}"

    def verify(self, token: str | None) -> TokenState:
        """Judge a ``reese84`` cookie value (``new`` = valid and seen for the first time)."""
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
    def visitor_cookies() -> dict[str, str]:
        """Cookies Imperva sets on its challenge response (not needed to pass the check)."""
        return {
            VISITOR_COOKIE: secrets.token_urlsafe(48),
            SESSION_COOKIE: secrets.token_urlsafe(40),
        }
