"""The crawls' extensions, one per module: the site session, the monitors, the stats file
and the run ledger. Other components find them with ``crawler.get_extension()``."""
