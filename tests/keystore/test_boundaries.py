"""The keystore is a plain library: it never imports aiohttp or anything from proxy."""

import ast
from pathlib import Path

import keystore

FORBIDDEN = ("aiohttp", "proxy")


def test_keystore_imports_neither_aiohttp_nor_proxy() -> None:
    offenders = []
    for path in Path(keystore.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
