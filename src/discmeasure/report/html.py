"""Self-contained HTML reports (images embedded as base64 PNG; no external files)."""

from __future__ import annotations

import base64
import html
import json

__all__ = ["page", "img_tag", "table_html"]

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}.flags{color:#a40}.small{color:#666;font-size:12px}
img{max-width:100%;border:1px solid #ddd;margin:4px}"""


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def table_html(df, columns=None, floatfmt="{:.2f}") -> str:
    cols = columns or list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    rows = []
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, float):
                s = "" if v != v else floatfmt.format(v)
            else:
                s = html.escape(str(v))
            cells.append(f"<td>{s}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def page(title: str, body: str, provenance: dict | None = None) -> str:
    prov = ""
    if provenance:
        prov = f"<details><summary>provenance</summary><pre>{html.escape(json.dumps(provenance, indent=1, default=str))}</pre></details>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}{prov}"
            "<p class='small'>discmeasure — research use; check every level visually before reporting.</p></body></html>")
