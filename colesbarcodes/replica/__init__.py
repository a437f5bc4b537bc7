"""An offline replica of the retailer's site, for tests, benchmarks and demos.

Standalone on purpose: it imports nothing from the rest of ``colesbarcodes``, so it cannot
accidentally agree with the code it is meant to test. See :mod:`.server` for the endpoints,
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
