"""The shared SKU frontier in Redis: the stream (``stream``), a crawl's worker on it
(``worker``) and feeding it from the enrichment inbox (``feed``)."""

# Here rather than in ``stream``, so that naming it (a command's default) imports no Redis.
DEFAULT_KEY = "colesbarcodes:frontier:coles"
