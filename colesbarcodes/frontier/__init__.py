"""The shared SKU frontier in Redis: the stream (``stream``), a crawl's worker on it
(``worker``) and feeding it from the enrichment inbox (``feed``)."""
