"""Woolworths' protection (Akamai) as it answers instead of content: the **block**, a 403 of
about 400 bytes of HTML ("Access Denied", "You don't have permission to access ...",
"Reference #18...", a link to ``errors.edgesuite.net`` with its dots written ``&#46;``). No
challenge is seen (no captcha). The word "akamai" is on good pages too: not a marker.
Pure functions, no Scrapy."""

from __future__ import annotations

__all__ = ["PROTECTION_BLOCK", "PROTECTION_CHALLENGE", "is_block_page", "protection_kind"]

PROTECTION_CHALLENGE = "challenge"
PROTECTION_BLOCK = "block"

_MARKERS = (
    b"Access Denied",
    b"You don't have permission to access",
    b"Reference&#32;&#35;18",
    b"Reference #18",
    b"errors&#46;edgesuite&#46;net",
    b"errors.edgesuite.net",
)


def is_block_page(body: bytes) -> bool:
    """True for Akamai's "Access Denied" page (two of its markers in a short HTML body),
    whatever status it came with."""
    if len(body) > 20_000:
        return False
    return sum(marker in body for marker in _MARKERS) >= 2


def protection_kind(body: bytes) -> str | None:
    """``"block"`` for the Akamai block page, else ``None`` (content): Woolworths serves no
    challenge a browser would pass."""
    return PROTECTION_BLOCK if is_block_page(body) else None
