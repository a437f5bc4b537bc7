"""The replica's category tree (department → category → aisle), shaped like Coles' browse tree.

The default tree is a trimmed copy of the real one (``templates/categories.json``); its real
product counts serve as weights so a generated catalogue is spread over departments like the
real site. Listing paths are the ``seoToken`` s from the department down joined by ``/``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

__all__ = ["PROMO_GROUPS", "CategoryNode", "CategoryTree"]

PROMO_GROUPS = ("down-down", "bonus-prize-entries")
"""Promotional groupings that repeat products listed elsewhere (as on the real site)."""


@dataclass(eq=False, slots=True)
class CategoryNode:
    """One node of the tree; ``path`` is its listing path (``pantry/cereal``)."""

    id: str
    level: int
    name: str
    seo_token: str
    path: str
    weight: int = 0
    children: list[CategoryNode] = field(default_factory=list)

    @property
    def department(self) -> str:
        """The level-1 ``seoToken`` this node sits under."""
        return self.path.split("/", 1)[0]


class CategoryTree:
    """Nodes by listing path; :meth:`ensure` grows it for paths read from a catalogue file."""

    def __init__(self, roots: list[CategoryNode]) -> None:
        self.roots = roots
        self.by_path: dict[str, CategoryNode] = {}
        for root in roots:
            self._index(root)

    def _index(self, node: CategoryNode) -> None:
        self.by_path[node.path] = node
        for child in node.children:
            self._index(child)

    @classmethod
    def default(cls) -> CategoryTree:
        """The trimmed real tree shipped in ``templates/categories.json``."""
        text = resources.files(__package__).joinpath("templates/categories.json").read_text()
        data = json.loads(text)
        return cls([_node_from_json(raw, "") for raw in data["catalogGroupView"]])

    def leaves(self) -> list[CategoryNode]:
        """Leaf nodes of the real departments (promotional groups excluded): where products go."""
        found: list[CategoryNode] = []

        def walk(node: CategoryNode) -> None:
            if node.children:
                for child in node.children:
                    walk(child)
            else:
                found.append(node)

        for root in self.roots:
            if root.seo_token not in PROMO_GROUPS:
                walk(root)
        return found

    def ensure(self, path: str) -> CategoryNode:
        """The node for ``path``, creating it (and missing parents) with names from its tokens."""
        path = path.strip("/")
        node = self.by_path.get(path)
        if node is not None:
            return node
        tokens = path.split("/")
        parent = self.ensure("/".join(tokens[:-1])) if len(tokens) > 1 else None
        token = tokens[-1]
        node = CategoryNode(
            id=str(9_000_000 + zlib.crc32(path.encode()) % 1_000_000),
            level=len(tokens),
            name=token.replace("-", " ").title(),
            seo_token=token,
            path=path,
        )
        (parent.children if parent is not None else self.roots).append(node)
        self.by_path[path] = node
        return node

    def lineage(self, path: str) -> list[CategoryNode]:
        """Nodes from the department down to ``path``."""
        tokens = path.split("/")
        return [self.by_path["/".join(tokens[: i + 1])] for i in range(len(tokens))]


def _node_from_json(raw: dict[str, Any], parent_path: str) -> CategoryNode:
    path = f"{parent_path}/{raw['seoToken']}" if parent_path else raw["seoToken"]
    node = CategoryNode(
        id=str(raw["id"]),
        level=int(raw["level"]),
        name=raw["name"],
        seo_token=raw["seoToken"],
        path=path,
        weight=int(raw.get("productCount") or 0),
    )
    node.children = [_node_from_json(child, path) for child in raw.get("catalogGroupView") or []]
    return node
