"""The retailers' sites, as pure functions (no Scrapy, no database): each retailer's pages'
and answers' shapes in its own package (``coles``), the adapter interface the crawl's
components use (``retailer``), the site check's verdicts (``checks``) and why a site
cannot be used (``unusable``)."""
