"""The database layer both the loader and the crawls share (it knows no crawler, no CLI)."""
