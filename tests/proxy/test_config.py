"""Config: TOML plus TOKENHUB_<SECTION>__<KEY> overrides, typed, every problem in one error."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxy.config import Config, ConfigError
from proxy.config_loader import load_config

TOKEN = {"TOKENHUB_ADMIN_TOKEN": "a" * 20}
EXAMPLE = Path(__file__).parents[2] / "config.example.toml"


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE, TOKEN | {"OPENAI_API_KEY": "sk-test"})
    assert config.providers[0].name == "openai" and config.aliases["gpt-4o"] == "openai/gpt-4o"
    assert config.keystore.namespace == config.redis.namespace


@pytest.mark.parametrize("env, section, field, value", [
    ({"TOKENHUB_SERVER__WORKERS": "4"}, "server", "workers", 4),
    ({"TOKENHUB_POSTGRES__DSN": "postgresql://db:5432/x"}, "postgres", "dsn", "postgresql://db:5432/x"),
    ({"TOKENHUB_KEYSTORE__STALE_BOUND_SECONDS": "0.5"}, "keystore", "stale_bound_seconds", 0.5),
    ({"TOKENHUB_REDIS__NAMESPACE": "blue"}, "redis", "namespace", "blue"),
    ({"TOKENHUB_LOGGING__FORMAT": "text"}, "logging", "format", "text"),
])
def test_environment_overrides_are_typed(env, section, field, value) -> None:
    config = load_config(None, TOKEN | env)
    assert getattr(getattr(config, section), field) == value


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlistn = "x"\nworkers = "two"\n[redis]\nurl = "http://x"\n[nope]\n'
                    '[[providers]]\nname = "Bad Name"\nbase_url = "ftp://x"\nmodels = []\napi_key_env = "MISSING"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, {"TOKENHUB_ADMIN_TOKEN": "short", "TOKENHUB_SERVER__WORKRS": "2"})
    text = "\n".join(err.value.problems)
    for fragment in ("listn", "workers", "redis:// or rediss://", "[nope]", "name must be", "base_url",
                     "models must be", "MISSING", "at least 16", "TOKENHUB_SERVER__WORKRS"):
        assert fragment in text
    assert len(err.value.problems) >= 10


def test_secrets_stay_out_of_the_repr() -> None:
    env = TOKEN | {"TOKENHUB_POSTGRES__DSN": "postgresql://u:hunter2@db/x", "PGPASS_ENV": "s3cret-pass"}
    config = load_config(None, env | {"TOKENHUB_POSTGRES__PASSWORD_ENV": "PGPASS_ENV"})
    assert config.postgres.password == "s3cret-pass"
    for secret in ("hunter2", "s3cret-pass", "a" * 20):
        assert secret not in repr(config)


def test_a_missing_file_or_bad_toml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml", TOKEN)
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, TOKEN)


@dataclass(frozen=True, slots=True)
class _Throwaway:
    size: int = 1
    names: tuple[str, ...] = ()
    ratio: float = 0.5

    def problems(self) -> list[str]:
        return ["size must be even"] if self.size % 2 else []


@dataclass(frozen=True, slots=True)
class _Extended(Config):
    throwaway: _Throwaway = field(default_factory=_Throwaway)


def test_a_new_section_passes_through_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "extended.toml"
    path.write_text('[throwaway]\nsize = 4\nnames = ["a", "b"]\n[server]\nworkers = 3\n')
    config = load_config(path, TOKEN | {"TOKENHUB_THROWAWAY__RATIO": "0.75"}, schema=_Extended)
    assert config.throwaway == _Throwaway(size=4, names=("a", "b"), ratio=0.75)
    assert config.server.workers == 3 and config.keystore.namespace == config.redis.namespace
    assert config.admin.tokens == {"admin": "a" * 20}


def test_a_new_section_checks_itself_and_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "extended.toml"
    path.write_text('[throwaway]\nsize = 3\nsise = 4\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, TOKEN | {"TOKENHUB_THROWAWAY__NOPE": "1"}, schema=_Extended)
    assert set(err.value.problems) == {"[throwaway] unknown setting 'sise'", "[throwaway] size must be even",
                                       "TOKENHUB_THROWAWAY__NOPE: no setting [throwaway] nope"}


def test_providers_are_built_by_the_same_machinery(tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text('[[providers]]\nname = "az"\napi = "azure"\nbase_url = "https://r.example"\n'
                    'api_version = "2024-10-21"\nmodels = ["gpt-4o"]\ndeployments = { "gpt-4o" = "prod-4o" }\n'
                    'prices = { "gpt-4o" = { input = 2.5, output = 10 } }\n'
                    '[[providers]]\nname = "bad"\nbase_url = "https://x"\nmodels = ["m"]\napi = "soap"\n'
                    'prices = { "m" = { input = "cheap" } }\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, TOKEN)
    assert any("api must be one of" in p for p in err.value.problems)
    assert any("input: expected a number" in p for p in err.value.problems)
    path.write_text(path.read_text().split('[[providers]]\nname = "bad"')[0])
    provider = load_config(path, TOKEN).providers[0]
    assert provider.deployments == {"gpt-4o": "prod-4o"} and provider.prices["gpt-4o"].output == 10.0


def test_migrate_needs_no_provider_credentials() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        load_config(EXAMPLE, TOKEN)
    assert load_config(EXAMPLE, TOKEN, provider_keys=False).providers[0].api_key == ""


def test_a_provider_with_a_bad_required_value_is_reported_not_crashed(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[[providers]]\nname = 7\nbase_url = "https://x"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, TOKEN)
    assert err.value.problems == ["provider 7: name: expected a string, got 7", "provider 7: missing setting 'models'"]
