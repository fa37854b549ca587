"""One self-contained HTML file: figures inlined as data URIs, no external requests."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from prunebench.report.checklist import Check
from prunebench.report.guidance import BLALOCK, WANG, Guidance
from prunebench.report.tables import Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
.pass { color: #17612a; } .fail { color: #a11; font-weight: bold; }
.guidance .paste { background: #f6f6f6; padding: 0.5em 0.8em; border-left: 3px solid #ccc; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
.figures figure { margin: 0; flex: 1 1 480px; }
"""

# Marks each figure once the browser has decoded it, so a headless check can read the result.
SCRIPT = """
window.addEventListener('load', function () {
  var images = document.querySelectorAll('img.figure');
  var ok = 0;
  images.forEach(function (img) {
    var rendered = img.complete && img.naturalWidth > 0;
    img.setAttribute('data-rendered', rendered ? 'true' : 'false');
    if (rendered) { ok += 1; }
  });
  document.body.setAttribute('data-figures-rendered', ok + '/' + images.length);
  var comparisons = document.querySelectorAll('section.guidance .comparison');
  var unmet = document.querySelectorAll('section.guidance li.fail');
  document.body.setAttribute('data-guidance', comparisons.length + ' comparison(s), ' + unmet.length + ' not met');
});
"""


@dataclass(frozen=True)
class Section:
    title: str
    figures: list[tuple[str, bytes]]  # (caption, PNG)
    tables: list[Table]
    checklist: list[Check]
    notes: list[str]
    guidance: list[Guidance] = field(default_factory=list)  # recommendations met and not met, per comparison


def figure_html(caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    alt = html.escape(caption)
    return f'<figure><img class="figure" alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def checklist_html(checks: list[Check]) -> str:
    items = "".join(
        f'<li class="{"pass" if c.passed else "fail"}">{"PASS" if c.passed else "VIOLATED"}: '
        f"{html.escape(c.name)} — {html.escape(c.detail)}</li>"
        for c in checks
    )
    return f"<ul>{items}</ul>"


def guidance_html(guidance: list[Guidance]) -> str:
    """Per comparison: the recommendations it meets and those it does not, then the same as one
    paragraph a reviewer can paste."""
    parts = [f'<section class="guidance"><h3>Recommendations met and not met ({BLALOCK}; {WANG})</h3>']
    for entry in guidance:
        items = "".join(
            f'<li class="{"pass" if v.met else "fail"}">{"MET" if v.met else "NOT MET"}: {html.escape(v.recommendation)} — '
            f"{html.escape(v.sentence)} ({html.escape(v.source)})</li>"
            for v in [*entry.met, *entry.unmet]
        )
        parts.append(f'<div class="comparison"><h4>{html.escape(entry.comparison)}</h4><ul>{items}</ul>'
                     f'<p class="paste">{html.escape(entry.text())}</p></div>')
    return "".join(parts) + "</section>"


def render(title: str, sections: list[Section], preamble: list[str]) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *(f"<p>{p}</p>" for p in preamble),
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append("<h3>Reporting checklist</h3>" + checklist_html(section.checklist))
        if section.guidance:
            parts.append(guidance_html(section.guidance))
        parts.append('<div class="figures">' + "".join(figure_html(c, png) for c, png in section.figures) + "</div>")
        for table in section.tables:
            parts.append(f"<h3>{html.escape(table.title)}</h3>{table.html()}")
        parts.extend(f"<p>{n}</p>" for n in section.notes)
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)
