"""rediss:// for real: a redis-server with TLS (self-signed certificate, an ACL user), the clients
redis_clients() builds from the config, a command and the revocation feed's pub/sub over it."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.config_loader import load_config
from proxy.runtime.resources import redis_clients
from tests.support.fleet import need
from tests.support.fleet_services import redis_servers
from tests.support.procs import free_port

ACL = ["--user", "tokenhub", "on", ">tls-user-secret-1", "~*", "&*", "+@all"]


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.pem", directory / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def _env(url: str) -> dict[str, str]:
    return {"TOKENHUB_REDIS__URL": url, "TOKENHUB_REDIS__USERNAME": "tokenhub",
            "TOKENHUB_REDIS__PASSWORD_ENV": "REDIS_PW", "REDIS_PW": "tls-user-secret-1"}


async def test_commands_and_the_feed_over_tls_with_an_acl_user(tmp_path: Path) -> None:
    need("redis-server", "openssl")
    cert, key = _certificate(tmp_path)
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
           "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    with redis_servers(tmp_path, 1, extra=[*tls, *ACL]):
        config = load_config(None, _env(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"))
        main, feed = redis_clients(config)
        try:
            assert await main.acl_whoami() == "tokenhub"
            ps = feed.pubsub()
            await ps.subscribe("thtls:revocations")
            assert (await ps.get_message(timeout=5))["type"] == "subscribe"
            await main.publish("thtls:revocations", "k1")
            message = await ps.get_message(timeout=5)
            assert message is not None and message["data"] == b"k1"
            await ps.aclose()
        finally:
            await main.aclose()
            await feed.aclose()
        # A server certificate the client does not trust is refused, not silently accepted.
        untrusted, _ = redis_clients(load_config(None, _env(f"rediss://127.0.0.1:{tls_port}/0")))
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(untrusted.ping(), 10)
        await untrusted.aclose()
