"""The project's own Scrapy signals."""

from __future__ import annotations

#: Sent once a batch of outcomes is committed to the database, with ``items`` (the
#: :class:`~colesbarcodes.items.BarcodeLookup` items of the batch). Components that must
#: act only on what is durably stored (acknowledging a shared frontier, say) connect here.
lookups_stored = object()

#: Sent (no arguments) to ask the components that hold outcomes in a batch to commit it
#: now instead of at the end of the batching delay: a frontier worker with nothing left to
#: take sends it, so that the other workers need not wait for its last outcomes.
flush_requested = object()
