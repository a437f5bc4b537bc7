"""Scrapy-facing pieces the crawl's components share that are not components themselves:
spider arguments as settings (``arguments``), turning a project component off for one
spider (``components``), closing a crawl from a component (``control``), the lookup
requests and their reading (``lookups``), and the exits a crawl leaves from (``exits``)."""
