"""The crawls' middlewares, one per module: the prefill and batched look-ups (spider
middlewares), the API key, the bot check, exits and polite retries (downloader
middlewares). ``settings.py`` names each by its module."""
