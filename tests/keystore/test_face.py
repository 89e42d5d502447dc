"""Issue 11: `keystore` is used through its package face. `proxy/` imports `from keystore import …` only (never
`keystore.pg`, `keystore.cache` …), and reads the store's statistics through `KeyStore.snapshot()`."""

import ast
from pathlib import Path

import keystore

PROXY = Path(__file__).resolve().parents[2] / "proxy"


def _deep_imports(path: Path, root: Path = PROXY.parent) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("keystore."):
            found.append(f"{path.relative_to(root)}:{node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import):
            found += [f"{path.relative_to(root)}:{node.lineno}: import {a.name}"
                      for a in node.names if a.name.startswith("keystore.")]
    return found


def test_proxy_imports_keystore_only_through_its_package_face() -> None:
    assert [hit for path in sorted(PROXY.rglob("*.py")) for hit in _deep_imports(path)] == []


def test_the_face_check_sees_a_deep_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from keystore import KeyStore\nfrom keystore.pg import Database\nimport keystore.cache\n")
    assert _deep_imports(probe, tmp_path) == ["probe.py:2: from keystore.pg import …", "probe.py:3: import keystore.cache"]


def test_the_face_exports_what_it_lists() -> None:
    assert all(hasattr(keystore, name) for name in keystore.__all__)


async def test_statistics_come_from_one_snapshot(make_store) -> None:
    store = await make_store(start=False)
    snap = store.snapshot()
    assert (snap.cached_keys, snap.argon2_verifies, snap.auth.local_hits, snap.feed.messages) == (0, 0, 0, 0)
    for part in ("db", "bus", "hasher", "local", "records"):
        assert not hasattr(store, part)
