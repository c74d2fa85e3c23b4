"""Write a script's results into its own section of a shared Markdown file.

Each benchmark or validation script owns one section delimited by
``<!-- name:start -->`` / ``<!-- name:end -->`` markers and replaces only that,
so several scripts can record into ``docs/benchmarks.md`` or
``docs/validation.md`` without clobbering each other.
"""

from __future__ import annotations

import platform
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def machine_line(*, load: bool = False) -> str:
    """One italic line: date, machine, Python; with ``load``, the 1/5-minute load averages now."""
    import os

    extra = ""
    if load and hasattr(os, "getloadavg"):
        l1, l5, _ = os.getloadavg()
        extra = f", load average {l1:.2f} / {l5:.2f} (1 / 5 min) when recorded"
    return (
        f"_Recorded {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, Python {platform.python_version()}{extra}._"
    )


def record_section(doc: str | Path, name: str, markdown: str, *, title: str | None = None) -> Path:
    """Replace (or append) section ``name`` of ``doc`` (path relative to the repo root or absolute)."""
    path = Path(doc)
    if not path.is_absolute():
        path = ROOT / path
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else f"# {title or path.stem.capitalize()}\n\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
