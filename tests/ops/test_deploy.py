"""deploy/ must match the code: every config file loads with the environment its deployment gives it,
every env var names a real setting or a variable the code reads, every `tokenhub` command parses, and
every port, probe path and grace period agrees with the config the deployment runs."""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from proxy.__main__ import build_parser
from proxy.app import create_admin_app, create_app
from proxy.config import Config, split_listen
from proxy.config_loader import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET = "placeholder-secret-0123456789"  # stands in for every secret a deployment injects


# -- reading the deployment files ---------------------------------------------------------------------

def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def k8s(kind: str) -> list[dict[str, Any]]:
    return [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml_docs(p) if d.get("kind") == kind]


def compose() -> dict[str, Any]:
    doc = yaml_docs(DEPLOY / "compose.yaml")[0]
    return {name: svc for name, svc in doc["services"].items()}


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    """`${VAR:?message}` and `${VAR}` are filled by the operator: a placeholder here; `${VAR:-default}` is
    what compose uses when the operator sets nothing: its default."""
    def fill(value: str) -> str:
        return re.sub(r"\$\{[^}:]*:-([^}]*)\}", r"\1", value)

    return {k: re.sub(r"\$\{[^}]*\}", SECRET, fill(str(v))) for k, v in (service.get("environment") or {}).items()}


def pod_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for doc in k8s("Deployment") + k8s("Job"):
        spec = doc["spec"]["template"]["spec"]
        for container in spec["containers"]:
            yield spec, container


def container_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", SECRET) for e in container.get("env", [])}


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    final_stage = text.rsplit("\nFROM ", 1)[1]
    return [(m[0].upper(), m[1].strip()) for m in re.findall(r"^(\w+)\s+(.*)$", final_stage, re.MULTILINE)]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, arg in dockerfile():
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", arg)))
    return env


def systemd() -> list[tuple[str, str]]:
    lines = (DEPLOY / "systemd" / "tokenhub.service").read_text().splitlines()
    return [tuple(x.split("=", 1)) for x in lines if "=" in x and not x.startswith("#")]  # type: ignore[misc]


def env_file(path: Path) -> dict[str, str]:
    return dict(x.split("=", 1) for x in path.read_text().splitlines() if "=" in x and not x.startswith("#"))


def systemd_env() -> dict[str, str]:
    env = env_file(DEPLOY / "systemd" / "tokenhub.env.example")
    env.update(v.split("=", 1) for k, v in systemd() if k == "Environment")  # type: ignore[arg-type]
    return env


def configmap_file(tmp_path: Path) -> Path:
    (cm,) = k8s("ConfigMap")
    path = tmp_path / "tokenhub.toml"
    path.write_text(cm["data"]["tokenhub.toml"])
    return path


# -- what the code offers -----------------------------------------------------------------------------

def code_strings() -> set[str]:
    """Every string literal in proxy/ and keystore/: the env vars the code reads are among them."""
    found: set[str] = set()
    for path in [*ROOT.glob("proxy/*.py"), *ROOT.glob("keystore/*.py")]:
        found |= {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str)}
    return found


def check_env(env: Mapping[str, str], config: Config, *, complete: bool = True) -> list[str]:
    """TOKENHUB_ names the code never reads (`TOKENHUB_X__Y` overrides are checked by load_config
    itself), and, if `complete`, the provider/password variables the config needs but is not given."""
    referenced = {p.api_key_env for p in config.providers} | {config.postgres.password_env, config.redis.password_env}
    referenced |= set(config.admin.token_envs.values())
    known = code_strings() | referenced
    bad = [n for n in env if n.startswith("TOKENHUB_") and "__" not in n and n not in known]
    return bad + [f"{n} not set" for n in referenced if complete and n and n not in env]


def routes(config: Config) -> tuple[set[str], set[str]]:
    proxy = create_app(config)
    admin = create_admin_app(config, proxy)
    return ({r.canonical for r in proxy.router.resources()}, {r.canonical for r in admin.router.resources()})


def parses(argv: list[str]) -> Any:
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"not a valid tokenhub command: tokenhub {shlex.join(argv)}")


def ports(config: Config) -> tuple[int, int]:
    return split_listen(config.server.listen)[1], split_listen(config.admin.listen)[1]


def url_target(text: str) -> tuple[int, str]:
    url = urlsplit(re.search(r"http://[^'\" ]+", text).group(0))  # type: ignore[union-attr]
    return int(url.port or 80), url.path


# -- the tests ----------------------------------------------------------------------------------------

def test_dockerfile_matches_the_code() -> None:
    env = docker_env() | {"TOKENHUB_ADMIN_TOKEN": SECRET, "OPENAI_API_KEY": SECRET,
                          "TOKENHUB_POSTGRES_PASSWORD": SECRET, "TOKENHUB_REDIS_PASSWORD": SECRET}
    copied = {a.split()[-1]: a.split()[-2] for op, a in dockerfile() if op == "COPY" and "--from" not in a}
    config = load_config(ROOT / copied[env["TOKENHUB_CONFIG"]], env)
    assert check_env(docker_env(), config, complete=False) == []  # secrets arrive at run time
    ops = dict(dockerfile())
    argv = [*ast.literal_eval(ops["CMD"])]
    assert ast.literal_eval(ops["ENTRYPOINT"]) == ["tokenhub"] and parses(argv).command == "serve"
    assert {int(p) for p in ops["EXPOSE"].split()} == set(ports(config))
    assert url_target(ops["HEALTHCHECK"]) == (ports(config)[0], "/readyz")
    assert "/readyz" in routes(config)[0]
    user = ops["USER"].split(":")[0]
    assert user not in ("0", "root")


def test_compose_matches_the_code() -> None:
    services = compose()
    tokenhub = {n: s for n, s in services.items() if s.get("image", "").startswith("tokenhub")}
    for name, svc in tokenhub.items():
        env = compose_env(svc)
        mounts = dict(reversed(v.split(":")[:2]) for v in svc["volumes"])
        config = load_config(DEPLOY / mounts[env["TOKENHUB_CONFIG"]], env)
        assert check_env(env, config) == [], name
        args = parses(svc["command"])
        if args.command == "serve":
            published = {int(p.split(":")[-1]) for p in svc["ports"]}
            assert published == set(ports(config)), name
            assert url_target(svc["healthcheck"]["test"][-1]) == (ports(config)[0], "/readyz")
            assert _seconds(svc["stop_grace_period"]) > config.server.shutdown_grace_seconds
        if args.command == "demo":
            demo = next(p for p in config.providers if p.name == "demo")
            assert urlsplit(demo.base_url).port == args.port and urlsplit(demo.base_url).hostname == name
    assert {"postgres", "redis", "migrate"} <= set(services)
    assert sum(parses(s["command"]).command == "serve" for s in tokenhub.values()) == 2


def test_kubernetes_matches_the_code(tmp_path: Path) -> None:
    for spec, container in pod_containers():
        env = container_env(container)
        config_path = container["args"][container["args"].index("--config") + 1]
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "configMap" in volumes[mounts[str(Path(config_path).parent)]]
        config = load_config(configmap_file(tmp_path), env)
        assert check_env(env, config) == []
        assert container["command"] == ["tokenhub"] and parses(container["args"]).command in ("serve", "migrate")
        assert spec["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_ports_probes_and_grace(tmp_path: Path) -> None:
    config = load_config(configmap_file(tmp_path), {"OPENAI_API_KEY": SECRET, "TOKENHUB_POSTGRES_PASSWORD": SECRET,
                                                    "TOKENHUB_REDIS_PASSWORD": SECRET})
    proxy_routes, admin_routes = routes(config)
    (deployment,) = k8s("Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(named.values()) == set(ports(config))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert named[get["port"]] == ports(config)[0] and get["path"] in proxy_routes
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    notes = pod["metadata"]["annotations"]
    assert int(notes["prometheus.io/port"]) == ports(config)[1] and notes["prometheus.io/path"] in admin_routes
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > config.server.shutdown_grace_seconds + pre_stop
    for service in k8s("Service"):
        assert all(p["targetPort"] in named for p in service["spec"]["ports"])


def test_kubernetes_set_is_complete() -> None:
    kinds = {d["kind"] for p in (DEPLOY / "k8s").glob("*.yaml") for d in yaml_docs(p)}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job",
            "Secret", "Kustomization", "NetworkPolicy"} <= kinds
    (kustomization,) = yaml_docs(DEPLOY / "k8s" / "kustomization.yaml")
    assert all((DEPLOY / "k8s" / r).exists() for r in kustomization["resources"])
    names = {d["metadata"]["name"] for d in k8s("Deployment")}
    for doc in k8s("HorizontalPodAutoscaler"):
        assert doc["spec"]["scaleTargetRef"]["name"] in names
    secrets = {d["metadata"]["name"] for d in k8s("Secret")}
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for _, c in pod_containers() for e in c["env"]}
    assert refs <= secrets


def test_redis_requires_a_password_from_a_secret(tmp_path: Path) -> None:
    """Issue 12: the shipped Redis refuses clients without the password; the proxies get it from a secret."""
    services = compose()
    redis = services["redis"]
    assert "--requirepass" in " ".join(redis["command"]) and "/run/secrets/redis_password" in " ".join(redis["command"])
    assert redis["secrets"] == ["redis_password"] and "ports" not in redis
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][-1]
    secret = yaml_docs(DEPLOY / "compose.yaml")[0]["secrets"]["redis_password"]
    for name, svc in services.items():
        if svc.get("image", "").startswith("tokenhub"):
            env = compose_env(svc)
            config = load_config(DEPLOY / "tokenhub.toml", env)
            assert config.redis.password_env == secret["environment"] and config.redis.password == SECRET, name
    config = load_config(configmap_file(tmp_path), {"OPENAI_API_KEY": SECRET, "TOKENHUB_POSTGRES_PASSWORD": SECRET,
                                                    "TOKENHUB_REDIS_PASSWORD": SECRET})
    for _, container in pod_containers():
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
        assert refs[config.redis.password_env] == "redis-password"
    assert all("redis-password" in d["stringData"] for d in k8s("Secret"))


def test_a_rediss_option_is_offered() -> None:
    (cm,) = k8s("ConfigMap")
    assert "rediss://" in cm["data"]["tokenhub.toml"]
    url = compose()["proxy-1"]["environment"]["TOKENHUB_REDIS__URL"]
    assert url.startswith("${TOKENHUB_REDIS_URL:-redis://")  # the operator's rediss:// URL replaces it
    assert "rediss://" in (DEPLOY / "compose.yaml").read_text()


def test_network_policy_lets_only_tokenhub_reach_the_stores() -> None:
    policies = {p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: p for p in k8s("NetworkPolicy")}
    proxy = k8s("Deployment")[0]["spec"]["template"]["metadata"]["labels"]
    migrate = k8s("Job")[0]["spec"]["template"]["metadata"]["labels"]
    allowed = {"redis": [proxy], "postgres": [proxy, migrate]}
    for store, who in allowed.items():
        spec = policies[store]["spec"]
        assert spec["policyTypes"] == ["Ingress"] and len(spec["ingress"]) == 1
        peers = [p["podSelector"]["matchLabels"] for p in spec["ingress"][0]["from"]]
        assert all(p.items() <= labels.items() for p, labels in zip(peers, who, strict=True)), store
        assert all(set(p) == {"podSelector"} for p in spec["ingress"][0]["from"])  # no namespace or CIDR holes


def test_systemd_unit_matches_the_code() -> None:
    unit = systemd()
    env = systemd_env()
    config = load_config(ROOT / "config.example.toml", env)
    assert check_env(env, config) == []
    commands = [shlex.split(v) for k, v in unit if k in ("ExecStart", "ExecStartPre")]
    assert commands and all(c[0].endswith("/tokenhub") for c in commands)
    assert {parses(c[1:]).command for c in commands} == {"serve", "migrate"}
    assert all(c[c.index("--config") + 1] == env["TOKENHUB_CONFIG"] for c in commands)
    settings = dict(unit)
    assert float(settings["TimeoutStopSec"]) > config.server.shutdown_grace_seconds
    assert settings["User"] != "root" and settings["KillMode"] == "mixed"


def _seconds(text: str) -> float:
    return float(text.rstrip("s"))
