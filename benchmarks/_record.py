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


START_LOAD = None  # 1-minute load average when a benchmark started (set by start_load())


def start_load() -> None:
    """Note the 1-minute load average at the start of a benchmark (shown by machine_line(load=True))."""
    import os

    global START_LOAD
    if hasattr(os, "getloadavg"):
        START_LOAD = os.getloadavg()[0]


def machine_line(*, load: bool = False) -> str:
    """One italic line: date, machine, Python; with ``load``, the 1-minute load average at the start
    (when :func:`start_load` was called) and at the end of the run."""
    import os

    extra = ""
    if load and hasattr(os, "getloadavg"):
        l1 = os.getloadavg()[0]
        start = "" if START_LOAD is None else f"{START_LOAD:.2f} at the start, "
        extra = f"; 1-minute load average {start}{l1:.2f} at the end (2 = both cores busy)"
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


def timed(fn, n: int):
    """Run ``fn`` ``n`` times: (last result, median seconds, best seconds)."""
    import statistics

    ts, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return out, statistics.median(ts), min(ts)


def publish_section(doc: str | Path, name: str, heading: str, lines: list[str], *, title: str,
                    load: bool = False) -> str:
    """Close ``lines`` with the machine line (:func:`machine_line`), print them, and record them
    under ``heading`` as section ``name`` of ``doc`` (:func:`record_section`); returns the text."""
    text = "\n".join(list(lines) + ["", machine_line(load=load)])
    print(text)
    record_section(doc, name, f"{heading}\n\n{text}", title=title)
    return text

