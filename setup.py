"""For ``scrapyd-deploy``, which builds the project's egg with ``python setup.py bdist_egg``
(and would write a setup.py of its own, with other metadata, if this one were missing).
Everything about the package is in pyproject.toml."""

from setuptools import setup

setup()
