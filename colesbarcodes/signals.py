"""The project's own Scrapy signals."""

from __future__ import annotations

#: Sent once a batch of outcomes is committed to the database, with ``items`` (the
#: :class:`~colesbarcodes.items.BarcodeLookup` items of the batch). Components that must
#: act only on what is durably stored (acknowledging a shared frontier, say) connect here.
lookups_stored = object()
