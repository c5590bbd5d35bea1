"""docs/architecture.md's module table names every module of the package, so
the map a reader starts from cannot fall behind the code (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The package's two source folders: the server's distribution and the SDK's.
PACKAGES = (ROOT / "src" / "agentwatch", ROOT / "sdk" / "src" / "agentwatch")


def table_rows() -> list[tuple[list[str], str]]:
    """(paths named in the first column, the whole row) of the Modules table."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("\n## Modules", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            rows.append((re.findall(r"`([^`]+)`", first), line))
    return rows


def covered(module: str, rows: list[tuple[list[str], str]]) -> bool:
    """Named in a row's first column, or a folder is named there (`server/api/`)
    and the row names the module's file inside it."""
    for paths, line in rows:
        if module in paths:
            return True
        for p in paths:
            if p.endswith("/") and module.startswith(p) and f"`{module[len(p) :]}`" in line:
                return True
    return False


def test_every_module_is_in_the_table() -> None:
    rows = table_rows()
    assert rows, "docs/architecture.md has no Modules table"
    modules = sorted(str(f.relative_to(p)) for p in PACKAGES for f in p.rglob("*.py"))
    missing = [m for m in modules if not covered(m, rows)]
    assert not missing, f"modules missing from docs/architecture.md's table: {missing}"


def test_every_module_in_the_table_exists() -> None:
    for paths, _ in table_rows():
        for p in paths:
            assert any((pkg / p).exists() for pkg in PACKAGES), (
                f"docs/architecture.md names {p}, which does not exist"
            )
