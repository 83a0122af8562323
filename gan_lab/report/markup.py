"""The HTML pieces both report pages are made of: one stylesheet and sorting script, escaped text, tables,
sections, galleries, and every picture as an inline base64 PNG (matplotlib figures, PNG files, thumbnails).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

from matplotlib.figure import Figure

THUMB_PX = 128
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em 2em;color:#222;background:#fff}
h1{font-size:1.4em;word-break:break-all}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.path,.note{color:#666;font-size:.9em}code{background:#f3f3f3;padding:0 .25em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:middle}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer;user-select:none;white-space:nowrap}
table.sortable th[data-dir=asc]::after{content:" \\25B2"}table.sortable th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafa}.scroll{overflow-x:auto}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;text-align:center}
.gallery img{max-width:300px;border:1px solid #ddd;cursor:zoom-in}.gallery img.big{max-width:none;cursor:zoom-out}
figcaption{font-size:.8em;color:#555}img.thumb{width:96px;height:96px;object-fit:contain;border:1px solid #ddd}
img.wide{max-width:100%}.first{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.first img{max-width:420px;border:1px solid #ddd}.headline td{font-size:1.1em}.protocol{color:#555;font-size:.85em}
pre{background:#f6f8fa;padding:1em;overflow:auto;font-size:.8em;max-height:40em}
"""

SCRIPT = """
function sortBy(th){
  const tr=th.parentNode, i=[...tr.children].indexOf(th), body=th.closest('table').tBodies[0];
  const asc=th.dataset.dir!=='asc'; [...tr.children].forEach(h=>delete h.dataset.dir); th.dataset.dir=asc?'asc':'desc';
  const val=r=>{const c=r.cells[i]; return c.dataset.v!==undefined?c.dataset.v:c.textContent.trim();};
  const rows=[...body.rows].sort((a,b)=>{
    const x=val(a), y=val(b); if(x===''||y==='') return (x==='')-(y==='');
    const nx=Number(x), ny=Number(y);
    const c=(!isNaN(nx)&&!isNaN(ny))?(nx===ny?0:(nx<ny?-1:1)):x.localeCompare(y,undefined,{numeric:true});
    return asc?c:-c;});
  rows.forEach(r=>body.appendChild(r));}
document.querySelectorAll('table.sortable th').forEach(th=>th.addEventListener('click',()=>sortBy(th)));
document.querySelectorAll('.gallery img').forEach(im=>im.addEventListener('click',()=>im.classList.toggle('big')));
"""


def esc(value) -> str:
    return html.escape(str(value))


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _fig_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def _png(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) else None


def _thumbnail(path: Path) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            small = im.convert("RGB")
            small.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            small.save(buf, format="PNG")
            return buf.getvalue()
    except (OSError, ValueError):
        return None


def _img(data: bytes, alt: str, cls: str = "") -> str:
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    klass = f' class="{cls}"' if cls else ""
    return f'<img src="{uri}" alt="{esc(alt)}"{klass}>'


def _gallery(items: list[tuple[str, bytes]]) -> str:
    figures = "".join(f"<figure>{_img(data, caption)}<figcaption>{esc(caption)}</figcaption></figure>"
                      for caption, data in items)
    return f'<div class="gallery">{figures}</div>'


def _table(headers, rows) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _num_cell(number: float, text: str) -> str:
    """A numeric cell of a sortable table: shows ``text``, sorts by ``number`` (NaN: no value, sorts last)."""
    sort = "" if math.isnan(number) else repr(number).replace("inf", "Infinity")
    return f'<td class="num" data-v="{esc(sort)}">{esc(text)}</td>'


def _sortable(table_id: str, headers, rows: list[str]) -> str:
    """A table whose columns sort on a header click (the page's script), scrolling sideways when wide."""
    ths = "".join(f'<th title="click to sort">{esc(h)}</th>' for h in headers)
    return (f'<div class="scroll"><table class="sortable" id="{esc(table_id)}"><thead><tr>{ths}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _section(title: str, content: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{esc(title)}</h2>{content}</section>'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{SCRIPT}</script></body></html>\n")


def _note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'
