"""Newcomer snags: the README's first example calls a model the local stack serves and, like every
SDK snippet in the README, reads the key from TOKENHUB_API_KEY; `tokenhub migrate` runs without any
provider's API key (it only needs Postgres)."""

from __future__ import annotations

import re
from pathlib import Path

from proxy.runtime.local import API_KEY_ENV, DEMO_MODELS, PROVIDER
from tests.support.procs import provider, run_migrate, write_config

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_the_first_example_uses_a_model_of_the_local_stack() -> None:
    first = PYTHON_BLOCKS[0]
    models = re.findall(r'model="([^"]+)"', first)
    assert models and all(m in {f"{PROVIDER}/{name}" for name in DEMO_MODELS} for m in models), models


def test_every_readme_client_reads_the_key_from_the_environment() -> None:
    clients = [line for block in PYTHON_BLOCKS for line in block.splitlines() if "api_key=" in line]
    assert clients
    for line in clients:
        assert f'api_key=os.environ["{API_KEY_ENV}"]' in line, line
    assert not re.search(r'api_key="th-|Bearer th-[A-Za-z0-9]', README)


def test_migrate_runs_without_any_provider_key(tmp_path: Path, database_url: str, redis_url: str,
                                               namespace: str, migrated: None) -> None:
    config = write_config(tmp_path, database_url=database_url, redis_url=redis_url, namespace=namespace,
                          providers=[provider("openai", "https://api.openai.com/v1", ["gpt-4o"],
                                              api_key_env="TOKENHUB_TEST_UNSET_PROVIDER_KEY")])
    out = run_migrate(config, env={})
    assert "schema is current" in out
