"""An offline replica of the retailer's site, for tests, benchmarks and demos.

Standalone on purpose: it imports nothing from the rest of ``colesbarcodes``, so it cannot
accidentally agree with the code it is meant to test. It serves the site as it is in late 2026
by default (``layout="2024"`` for the older one). See :mod:`.server` for the endpoints,
:mod:`.graphql_api` for the GraphQL schema,
:class:`ReplicaConfig` for the switchable behaviours, :class:`Catalogue` for the products, and
:class:`ReplicaProcess` to run it in a subprocess.
"""

from .catalogue import Catalogue, ReplicaProduct
from .challenge import COOKIE_NAME, Challenge
from .gtin import MISSING
from .process import ReplicaProcess
from .runner import main, run, serve
from .server import DEFAULT_API_KEY, DEFAULT_BUILD_ID, ReplicaConfig, ReplicaSite, make_app

__all__ = [
    "COOKIE_NAME",
    "DEFAULT_API_KEY",
    "DEFAULT_BUILD_ID",
    "MISSING",
    "Catalogue",
    "Challenge",
    "ReplicaConfig",
    "ReplicaProcess",
    "ReplicaProduct",
    "ReplicaSite",
    "main",
    "make_app",
    "run",
    "serve",
]
