"""Fail when two files of a package import each other, directly or through others.

Function-level imports count (grimp reads them all). A module importing its own package's
``__init__`` is not a circle between files. Usage: python scripts/import_circles.py PACKAGE
"""

from __future__ import annotations

import sys
from collections import defaultdict

import grimp


def file_imports(package: str) -> dict[str, set[str]]:
    """module -> the modules it imports, inside ``package``."""
    graph = grimp.build_graph(package)
    imports: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if not module.startswith(imported + "."):
                imports[module].add(imported)
    return imports


def chain(imports: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The shortest import chain from ``start`` to ``goal`` (breadth first), or None."""
    parents = {start: start}
    frontier = [start]
    while frontier and goal not in parents:
        following = []
        for module in frontier:
            for imported in sorted(imports.get(module, ())):
                if imported not in parents:
                    parents[imported] = module
                    following.append(imported)
        frontier = following
    if goal not in parents:
        return None
    found = [goal]
    while found[-1] != start:
        found.append(parents[found[-1]])
    return found[::-1]


def circles(package: str) -> list[str]:
    """Each circle once per module on it, as ``a -> b -> ... -> a``."""
    imports = file_imports(package)
    return sorted(
        {
            " -> ".join([module, *path])
            for module in sorted(imports)
            for imported in imports[module]
            if (path := chain(imports, imported, module)) is not None
        }
    )


def main() -> int:
    found = circles(sys.argv[1])
    for line in found:
        print(f"import circle: {line}")
    print(f"{len(found)} import circles between the files of {sys.argv[1]}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
