"""The site's protection (Imperva, formerly Incapsula) as it answers instead of any page,
whatever the status: the JavaScript **challenge** ("Pardon Our Interruption"), which a real
browser passes, and the **block** page ("Request unsuccessful. Incapsula incident ID"), a
verdict on the client's address that no browser passes. Pure functions, no Scrapy."""

from __future__ import annotations

__all__ = [
    "BOT_CHECK_COOKIE_PREFIXES",
    "PROTECTION_BLOCK",
    "PROTECTION_CHALLENGE",
    "is_block_page",
    "is_bot_check",
    "protection_kind",
]


BOT_CHECK_COOKIE_PREFIXES = ("visid_incap_", "incap_ses_", "nlbi_", "reese84")


_BOT_CHECK_MARKERS = (
    b"Pardon Our Interruption",
    b"onProtectionInitialized",
    b"reeseSkipExpirationCheck",
    b"_Incapsula_Resource",
)


PROTECTION_CHALLENGE = "challenge"


PROTECTION_BLOCK = "block"


def is_bot_check(body: bytes) -> bool:
    """True for the bot-check page, whatever status and content type it came with."""
    head = body[:20_000]
    return sum(marker in head for marker in _BOT_CHECK_MARKERS) >= 2


def protection_kind(body: bytes) -> str | None:
    """``"challenge"`` (the JavaScript check a browser solves), ``"block"`` (Imperva's
    verdict on the client's address, which no browser solves) or ``None`` for content."""
    if is_bot_check(body):
        return PROTECTION_CHALLENGE
    if is_block_page(body):
        return PROTECTION_BLOCK
    return None


def is_block_page(body: bytes) -> bool:
    """True for Imperva's block (incident) page, whatever status it came with."""
    head = body[:20_000]
    if b"Incapsula incident ID" in head:
        return True
    return b"_Incapsula_Resource" in head and b"incident_id" in head and len(body) < 20_000
