"""The test suite's one set of helpers: each name means one thing everywhere.

Test modules import helpers from here (or its modules), never from a `conftest.py`; conftests hold
fixtures. What lives where:
- `clock`: `FakeClock`, the injected clock a test moves;
- `waiting`: `eventually` (a guard against hanging, never a timing assertion), `running`;
- `gates`: `TcpGate` (cut, restore, freeze, thaw) and `gated_url`: real network faults;
- `keys`: `forged`, a well-formed key with a wrong secret;
- `observe`: `QueryCounter` (asyncpg statements), `RedisMonitor` (Redis commands);
- `storage`: `open_pool`, `redis_pair`, `PG_OPTIONS`, `TABLES`, `StoreFactory`.
"""

from tests.support.clock import FakeClock
from tests.support.gates import TcpGate, gated_url
from tests.support.keys import forged
from tests.support.observe import QueryCounter, RedisMonitor
from tests.support.storage import PG_OPTIONS, TABLES, StoreFactory, open_pool, redis_pair
from tests.support.waiting import eventually, running

__all__ = [
    "PG_OPTIONS", "TABLES", "FakeClock", "QueryCounter", "RedisMonitor", "StoreFactory", "TcpGate", "eventually",
    "forged", "gated_url", "open_pool", "redis_pair", "running",
]
