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
.pass { color: #17612a; } .fail { color: #a11; font-weight: bold; } .absent { color: #666; }
.answer { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.answer figure { margin: 0; flex: 1 1 560px; } .answer .headline { flex: 1 1 360px; }
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
  var order = [];
  document.querySelectorAll('[data-part]').forEach(function (el) {
    var part = el.getAttribute('data-part');
    if (order[order.length - 1] !== part) { order.push(part); }
  });
  document.body.setAttribute('data-order', order.join(','));
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
    answer: list[Table] = field(default_factory=list)  # shown beside the main figure: the one-number summary
    headline: str = ""  # one sentence of HTML: the answer


def figure_html(caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    alt = html.escape(caption)
    return f'<figure><img class="figure" alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def checklist_html(checks: list[Check]) -> str:
    items = "".join(
        f'<li class="{"absent" if c.absent else "pass" if c.passed else "fail"}">'
        f"{c.state}: {html.escape(c.name)} — {html.escape(c.detail)}</li>"
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
    """Per comparison: the answer first (the main figure beside the one-number summary), then the
    other figures, the tables, and the checklist with the recommendations in one place; the
    definitions and the run counts close the page."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        main, rest = section.figures[:1], section.figures[1:]
        answer = "".join(f"<h3>{html.escape(t.title)}</h3>{t.html()}" for t in section.answer)
        headline = f"<p><strong>{section.headline}</strong></p>" if section.headline else ""
        parts.append('<div class="answer" data-part="answer">' + "".join(figure_html(c, png) for c, png in main)
                     + f'<div class="headline">{headline}{answer}</div></div>')
        if rest:
            parts.append('<div class="figures" data-part="figures">' + "".join(figure_html(c, png) for c, png in rest) + "</div>")
        for table in section.tables:
            parts.append(f'<div data-part="tables"><h3>{html.escape(table.title)}</h3>{table.html()}</div>')
        parts.extend(f"<p>{n}</p>" for n in section.notes)
        parts.append('<div data-part="checklist"><h3>Reporting checklist</h3>' + checklist_html(section.checklist)
                     + (guidance_html(section.guidance) if section.guidance else "") + "</div>")
    parts.append('<h2>Definitions and runs</h2><div data-part="definitions">'
                 + "".join(f"<p>{p}</p>" for p in preamble) + "</div>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)
