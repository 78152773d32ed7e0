"""The domain may use eventsourcing's domain module only (import-linter cannot express
a rule about one module of an external package)."""

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "domain"
IO_MODULES = {"sqlite3", "socket", "asyncio", "threading", "subprocess", "urllib", "http", "os"}


def test_domain_imports_only_pure_modules() -> None:
    offenders = []
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if (top == "eventsourcing" and name != "eventsourcing.domain") or top in IO_MODULES:
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []
