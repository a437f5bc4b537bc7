"""The house's layout, checked: one kind per folder, dependencies one way, modules a
reader can hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from colesbarcodes.site import coles
from colesbarcodes.site.retailer import RETAILERS, UnknownRetailer, retailer_site

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "colesbarcodes"
MAX_LINES = 600


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (type-checking blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _production_modules() -> list[Path]:
    return [
        path
        for folder in (PACKAGE, ROOT / "loaders")
        for path in folder.rglob("*.py")
        if "replica" not in path.parts and "migrations" not in path.parts
    ]


def test_every_module_in_spiders_defines_a_spider() -> None:
    """Scrapy's spider loader imports every module of the folder: spiders only."""
    for path in (PACKAGE / "spiders").glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        bases = {
            ast.unparse(base)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for base in node.bases
        }
        assert bases & {"scrapy.Spider", "Spider"}, f"{path.name} defines no spider"


def test_the_sites_parsing_knows_no_scrapy_no_database_and_no_crawl() -> None:
    for path in (PACKAGE / "site").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("scrapy", "sqlalchemy", "psycopg")), (path, module)
            assert not module.startswith(
                (
                    "colesbarcodes.crawl",
                    "colesbarcodes.db",
                    "colesbarcodes.extensions",
                    "colesbarcodes.middlewares",
                    "colesbarcodes.spiders",
                )
            ), (path, module)


def test_the_database_layer_knows_no_crawler_and_no_command_line() -> None:
    for path in (PACKAGE / "db").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("scrapy", "click", "loaders")), (path, module)
            assert not module.startswith(
                ("colesbarcodes.spiders", "colesbarcodes.crawl", "colesbarcodes.extensions")
            ), (path, module)


def test_the_loader_and_the_spiders_never_import_each_other() -> None:
    for path in (ROOT / "loaders").rglob("*.py"):
        assert not any(m.startswith("colesbarcodes.spiders") for m in _imports(path)), path
    for path in PACKAGE.rglob("*.py"):
        assert not any(m.startswith("loaders") for m in _imports(path)), path


def test_no_production_module_is_over_the_line_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _production_modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long


def test_every_known_retailer_has_an_adapter_and_an_unknown_one_is_named() -> None:
    assert [retailer_site(name) for name in RETAILERS] == [coles]
    with pytest.raises(UnknownRetailer, match="'nowhere'"):
        retailer_site("nowhere")
