"""Config: TOML plus TOKENHUB_<SECTION>__<KEY> overrides, typed, every problem in one error."""

from pathlib import Path

import pytest

from proxy.config import ConfigError, load_config

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
