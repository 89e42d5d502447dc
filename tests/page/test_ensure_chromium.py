"""deploy/ensure-chromium.sh, which `deploy/dev.sh test` runs first: quiet and idempotent."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.page import CHROMIUM

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "ensure-chromium.sh"


def test_is_silent_when_chromium_is_installed() -> None:
    assert Path(CHROMIUM).is_file()  # dev.sh ran the script before these tests
    for _ in range(2):
        done = subprocess.run(["bash", str(SCRIPT)], check=False, capture_output=True, stdin=subprocess.DEVNULL,
                              timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
