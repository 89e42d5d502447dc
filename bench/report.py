"""Results as Markdown: tables, the goals with their verdicts, the machine; written into bench/README.md."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[object]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append(cells)


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    target: str
    measured: str
    met: bool | None  # None: could not be measured in this run


def fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def markdown_table(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in table.rows]
    lines += [""] + [f"- {n}" for n in table.notes]
    return "\n".join(lines).rstrip() + "\n"


def goals_table(goals: Sequence[Goal]) -> Table:
    verdict = {True: "met", False: "**missed**", None: "not measured"}
    table = Table("Goals", ["goal", "target", "measured", "verdict"])
    for g in goals:
        table.add(g.name, g.target, g.measured, verdict[g.met])
    return table


def machine() -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    virt = "virtual machine" if "hypervisor" in Path("/proc/cpuinfo").read_text() else "bare metal"
    return [f"{cpu}, {os.cpu_count()} cores ({virt}), {mem_kb / 1024 / 1024:.1f} GiB RAM",
            f"{platform.platform()}, Python {platform.python_version()}, aiohttp {aiohttp.__version__}"]


def code_version(root: Path) -> str:
    """The commit under test, and whether the product's files differed from it (shared working tree)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "proxy", "keystore", "pyproject.toml")
    return f"commit {commit}" + (" plus uncommitted changes in proxy/ or keystore/" if dirty else "")


def render(header: Sequence[str], tables: Sequence[Table], goals: Sequence[Goal]) -> str:
    parts = ["\n".join(header) + "\n", markdown_table(goals_table(goals))]
    parts += [markdown_table(t) for t in tables]
    return "\n".join(parts)


def record(readme: Path, body: str) -> None:
    """Replace the results section of the README (between the markers) with `body`."""
    text = readme.read_text() if readme.exists() else f"# Benchmark\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    readme.write_text(pattern.sub(lambda _: f"{START}\n{body.rstrip()}\n{END}", text))
