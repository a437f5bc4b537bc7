"""The retailer's site: its pages' and answers' shapes (``coles``, pure functions), the
barcode source that asks it (``source``), the site check's verdicts (``checks``) and the
exits (forward proxies) the crawls go out through (``exits``)."""
