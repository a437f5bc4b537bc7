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

#: Sent when a crawl takes a work unit of SKUs to look up, with ``unit``: an enrichment file
#: claimed by :class:`~colesbarcodes.extensions.enrichment_files.EnrichmentFiles`, or a
#: frontier read (:class:`~colesbarcodes.frontier.worker.FrontierRead`). The prefill loads what the database knows about its SKUs.
work_unit_taken = object()

#: Sent by the pipeline when it gives up storing outcomes (the database stays
#: unreachable), with ``items``: the outcomes not stored, to be kept for the next run.
lookups_unstored = object()

#: Sent by a spider before its feeds close, for a feed that must not be published, with
#: ``options`` (feed options that single the feed out, such as ``{"coles_store_id":
#: "0584"}``) and ``problem`` (why). The
#: :class:`~colesbarcodes.feeds.storage.AtomicFileFeedStorage` of every feed whose options
#: include ``options`` deletes its file instead of publishing it.
feed_incomplete = object()

#: Sent by :class:`~colesbarcodes.feeds.storage.AtomicFileFeedStorage` once a feed's file
#: is published under its name, with ``feed_options`` and ``path``.
feed_published = object()
