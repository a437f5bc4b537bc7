"""Scrapy commands of the project (``COMMANDS_MODULE``): a ``crawl`` whose exit status
tells a failed monitor."""
