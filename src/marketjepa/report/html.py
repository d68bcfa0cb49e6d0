"""Self-contained HTML rendering of the report sections: inline CSS, images embedded as
base64 ``data:image/png`` URIs, no external resources."""

from __future__ import annotations

import base64
import html
import re

from marketjepa.report.markdown import Bullets, Image, Para, Section, Table, header_lines

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:3px solid #333;padding-bottom:.2em}
h2{border-bottom:1px solid #bbb;margin-top:2em;font-size:1.25em;letter-spacing:.03em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}
caption{caption-side:top;text-align:left;font-style:italic;padding:.3em 0}
p.warning{background:#fff4e0;border-left:4px solid #e69500;padding:.4em .8em}
p.critical{background:#fde8e8;border-left:4px solid #c62828;padding:.4em .8em}
p.ok{background:#e9f6ec;border-left:4px solid #2e7d32;padding:.4em .8em}
figure{margin:1em 0}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85em;color:#555}
nav a{margin-right:.8em;font-size:.85em}
.meta{color:#555;font-size:.9em}
"""


def _inline(text: str) -> str:
    """Escape, then render the two inline markups the sections use: **bold** and _(italic)_."""
    s = html.escape(str(text))
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    return re.sub(r"(?<!\w)_(\(.+?\))_(?!\w)", r"<em>\1</em>", s)


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _table(t: Table) -> str:
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption>{_inline(t.caption)}</caption>")
    out.append(
        "<thead><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in t.headers) + "</tr></thead>"
    )
    out.append("<tbody>")
    for row in t.rows:
        out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _block(b: object, images: dict[str, bytes]) -> str:
    if isinstance(b, Para):
        cls = f' class="{b.cls}"' if b.cls else ""
        return f"<p{cls}>{_inline(b.text)}</p>"
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Bullets):
        tag = "ol" if b.ordered else "ul"
        return f"<{tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in b.items) + f"</{tag}>"
    if isinstance(b, Image) and b.name in images:
        data = base64.b64encode(images[b.name]).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(b.caption)}">'
            f"<figcaption>{_inline(b.caption)}</figcaption></figure>"
        )
    return ""


def render_html(summary: dict, sections: list[Section], images: dict[str, bytes]) -> str:
    title = f"LeJEPA Training Summary Report — {summary.get('run_name')}"
    nav = "".join(
        f'<a href="#{sec.id or _slug(sec.title)}">{html.escape(sec.title)}</a>' for sec in sections
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="meta">' + "<br>".join(html.escape(x) for x in header_lines(summary)) + "</p>",
        f"<nav>{nav}</nav>",
    ]
    for sec in sections:
        parts.append(
            f'<section id="{sec.id or _slug(sec.title)}"><h2>{html.escape(sec.title)}</h2>'
        )
        parts += [_block(b, images) for b in sec.blocks]
        parts.append("</section>")
    parts.append('<p class="meta">END OF REPORT</p></body></html>')
    return "\n".join(p for p in parts if p)
