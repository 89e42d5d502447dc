"""deploy/compose-fleet.yaml (Sentinel + PgBouncer) and the Kubernetes notes for a managed Redis and
PgBouncer match the code, the same way tests/ops/test_deploy.py checks the plain deployment files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from proxy.config_loader import load_config
from tests.ops.test_deploy import (
    DEPLOY,
    SECRET,
    _seconds,
    check_env,
    compose_env,
    k8s,
    parses,
    ports,
    url_target,
    yaml_docs,
)

FLEET = DEPLOY / "compose-fleet.yaml"


def fleet() -> dict[str, Any]:
    return dict(yaml_docs(FLEET)[0]["services"])


def _config(svc: dict[str, Any]) -> Any:
    env = compose_env(svc)
    mounts = dict(reversed(v.split(":")[:2]) for v in svc["volumes"])
    return env, load_config(DEPLOY / mounts[env["TOKENHUB_CONFIG"]], env)


def test_fleet_compose_matches_the_code() -> None:
    services = fleet()
    tokenhub = {n: s for n, s in services.items() if s.get("image", "").startswith("tokenhub")}
    serving = 0
    for name, svc in tokenhub.items():
        env, config = _config(svc)
        assert check_env(env, config) == [], name
        if parses(svc["command"]).command == "serve":
            serving += 1
            assert {int(p.split(":")[-1]) for p in svc["ports"]} == set(ports(config)), name
            assert url_target(svc["healthcheck"]["test"][-1]) == (ports(config)[0], "/readyz")
            assert _seconds(svc["stop_grace_period"]) > config.server.shutdown_grace_seconds
    assert serving == 2


def test_fleet_compose_runs_sentinel_and_the_proxies_follow_it() -> None:
    services = fleet()
    sentinels = {n: s for n, s in services.items() if "redis-sentinel" in " ".join(map(str, s.get("command", [])))}
    assert len(sentinels) == 3
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis-primary 6379" in replica and "--requirepass" in replica
    _, config = _config(services["proxy-1"])
    assert config.redis.mode == "sentinel" and config.redis.password == SECRET
    assert {s.split(":")[0] for s in config.redis.sentinels} == set(sentinels)
    for svc in sentinels.values():
        script = svc["command"][-1]
        monitor = re.search(r"sentinel monitor (\S+) (\S+) (\d+) (\d+)", script)
        assert monitor and monitor[1] == config.redis.master_name and monitor[2] == "redis-primary"
        assert int(monitor[4]) == 2  # a quorum of two of the three
        assert f"sentinel auth-pass {config.redis.master_name} $$(cat /run/secrets/redis_password)" in script
        assert all(f":{26379}" in s for s in config.redis.sentinels) and "port 26379" in script


def test_fleet_compose_reaches_postgres_only_through_pgbouncer_in_transaction_mode() -> None:
    services = fleet()
    bouncer = services["pgbouncer"]["environment"]
    assert bouncer["POOL_MODE"] == "transaction" and bouncer["DB_HOST"] == "postgres"
    for name, svc in services.items():
        if svc.get("image", "").startswith("tokenhub"):
            _, config = _config(svc)
            host = re.match(r"postgresql://[^@]*@([^:/]+):(\d+)/", config.postgres.dsn)
            assert host and host[1] == "pgbouncer" and int(host[2]) == int(bouncer["LISTEN_PORT"]), name
            assert config.postgres.pgbouncer is True, name


def test_kubernetes_config_documents_a_managed_redis_and_pgbouncer(tmp_path: Path) -> None:
    """The ConfigMap's commented alternatives (`# managed[ variant]: [section] setting`) are real settings:
    applied over the shipped config, each variant loads (TLS, an ACL user, PgBouncer; cluster or sentinel)."""
    (cm,) = k8s("ConfigMap")
    text = cm["data"]["tokenhub.toml"]
    lines = re.findall(r"# managed( \w+)?: \[(\w+)\] (.*)", text)
    for variant in ("", "cluster", "sentinel"):
        chosen: dict[str, list[str]] = {}
        for tag, section, setting in lines:
            if tag.strip() in ("", variant):
                chosen.setdefault(section, []).append(setting)
        path = tmp_path / f"managed-{variant or 'standalone'}.toml"
        path.write_text(_applied(_uncommented(text), chosen))
        config = load_config(path, {"TOKENHUB_REDIS_PASSWORD": SECRET, "TOKENHUB_POSTGRES_PASSWORD": SECRET,
                                    "OPENAI_API_KEY": SECRET})
        assert config.redis.mode == (variant or "standalone") and config.redis.url.startswith("rediss://")
        assert config.postgres.pgbouncer is True and config.redis.username and config.redis.password == SECRET


def _applied(text: str, chosen: dict[str, list[str]]) -> str:
    """`text` with each chosen setting added at the top of its section."""
    def section(m: re.Match[str]) -> str:
        return "\n".join([m[0], *chosen.get(m[1], [])])

    return re.sub(r"^\[(\w+)\]$", section, text, flags=re.MULTILINE)


def _uncommented(text: str) -> str:
    """The shipped settings without the ones a managed variant replaces (so none is set twice)."""
    replaced = {"dsn", "url"}
    return "\n".join(line for line in text.splitlines() if line.split("=")[0].strip() not in replaced)
