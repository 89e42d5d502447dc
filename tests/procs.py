"""Old import path: the `tokenhub serve` process helpers live in `tests/support/procs.py`."""

from tests.support.procs import (
    ADMIN_TOKEN,
    ServeProcess,
    free_port,
    provider,
    render_toml,
    run_migrate,
    serving,
    start_serve,
    write_config,
)

__all__ = ["ADMIN_TOKEN", "ServeProcess", "free_port", "provider", "render_toml", "run_migrate", "serving",
           "start_serve", "write_config"]
