"""Server-rendered SVG charts of the activity indicators, for the console's « Activité » page.

Pure functions returning an SVG document as text: no script, no external asset (no font, no
CDN, no link), inline presentation attributes only, so the page can embed them as they are
(`<figure>{svg}</figure>`) under a strict Content-Security-Policy. Accessible: `role="img"`,
`aria-labelledby` naming a `<title>` and a `<desc>` that says the data in words (French), a
`<title>` on every point and bar; series differ by colour (Okabe–Ito, safe for colour-blind
readers) *and* by dash pattern and marker, and are named in a legend.

- `line_chart(title, labels, series)`: values over time (one line per series, gaps for None);
- `bar_chart(title, bars)`: one horizontal bar per category (per-modality indicators);
- `file_active_chart(report)`, `modality_bar_chart(report, …)`: the two above fed from
  `gateway.activity.indicators.report`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

from gateway.activity.model import MODALITIES, MODALITY_FR

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 6")
FONT = "system-ui, sans-serif"  # generic families only: nothing to fetch
MONTHS_FR = ("janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc.")


def number_fr(value: float, digits: int = 1) -> str:
    """12 345,6 (French: comma decimal, narrow no-break space for thousands)."""
    text = f"{value:,.{digits}f}" if digits else f"{round(value):,d}"
    text = text.replace(",", "\u202f").replace(".", ",")
    if digits and "," in text:
        text = text.rstrip("0").rstrip(",")
    return text


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k not below `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10 ** exponent
        if candidate >= value - 1e-12:
            return float(candidate)
    return float(10 ** (exponent + 1))


def _id(kind: str, title: str) -> str:
    return f"{kind}-{hashlib.sha256(title.encode('utf-8')).hexdigest()[:8]}"


def _text(x: float, y: float, content: str, *, size: int = 12, anchor: str = "start",
          weight: str | None = None, fill: str = "#1a1a1a") -> str:
    extra = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{FONT}" font-size="{size}" '
            f'text-anchor="{anchor}" fill="{fill}"{extra}>{escape(content)}</text>')


def _open(kind: str, title: str, description: str, width: int, height: int) -> tuple[str, list[str]]:
    ident = _id(kind, title)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _text(16, 24, title, size=15, weight="bold"),
    ]
    return ident, head


def _fmt(value: float | None, unit: str, digits: int) -> str:
    if value is None:
        return "sans donnée"
    return f"{number_fr(value, digits)}{' ' + unit if unit else ''}"


def line_chart(title: str, labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *,
               unit: str = "", digits: int = 1, width: int = 720, height: int = 340) -> str:
    """One line per series over `labels` (months…); None leaves a gap."""
    names = list(series)
    values = [v for name in names for v in series[name] if v is not None]
    description = "; ".join(
        f"{name} : " + ", ".join(f"{label} {_fmt(v, unit, digits)}" for label, v in zip(labels, series[name]))
        for name in names) or "aucune donnée"
    ident, out = _open("courbe", title, description, width, height)
    left, right, top = 56, 36, 52
    legend_rows = math.ceil(len(names) / 3) if names else 0
    bottom = 40 + 18 * legend_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    if not values or not labels:
        out.append(_text(width / 2, top + plot_h / 2, "aucune donnée sur la période", anchor="middle"))
        return "\n".join(out + ["</svg>"])
    top_value = nice_ceiling(max(values))
    if digits == 0:  # whole numbers: four whole steps, so no axis label repeats (2, 2, 1, 0, 0)
        top_value = float(max(4, math.ceil(top_value / 4) * 4))
    out.append(f'<g aria-hidden="true" font-family="{FONT}" font-size="11" fill="#444444">')
    for i in range(5):  # horizontal grid and y labels
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#dddddd" stroke-width="1"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(number_fr(value, digits))}</text>')
    step = plot_w / max(1, len(labels) - 1) if len(labels) > 1 else 0
    xs = [left + (step * i if len(labels) > 1 else plot_w / 2) for i in range(len(labels))]
    widest = max(len(label) for label in labels) * 6.6 + 10  # 11 px glyphs, generous
    every = max(1, math.ceil(widest / step)) if step else 1
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f'<text x="{xs[i]:.1f}" y="{top + plot_h + 16:.1f}" text-anchor="middle">{escape(label)}</text>')
    out.append("</g>")
    if unit:
        out.append(_text(left - 40, top - 12, unit, size=11, fill="#444444"))
    for s, name in enumerate(names):
        colour, dash = PALETTE[s % len(PALETTE)], DASHES[s % len(DASHES)]
        points = [(xs[i], top + plot_h - plot_h * v / top_value) if v is not None else None
                  for i, v in enumerate(series[name][:len(labels)])]
        runs, run = [], []
        for point in points + [None]:
            if point is None:
                if run:
                    runs.append(run)
                run = []
            else:
                run.append(point)
        out.append(f'<g class="serie" data-serie={quoteattr(name)}>')
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        for i, point in enumerate(points):
            if point is not None:
                out.append(f'<circle cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="3.5" fill="{colour}">'
                           f'<title>{escape(f"{name}, {labels[i]} : {_fmt(series[name][i], unit, digits)}")}</title></circle>')
        out.append("</g>")
    for s, name in enumerate(names):  # legend
        x = left + (s % 3) * (plot_w / 3)
        y = height - bottom + 34 + 18 * (s // 3)
        dash = DASHES[s % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 22:.1f}" y2="{y - 4:.1f}" '
                   f'stroke="{PALETTE[s % len(PALETTE)]}" stroke-width="2"{dash_attr}/>')
        out.append(_text(x + 28, y, name, size=12))
    return "\n".join(out + ["</svg>"])


def bar_chart(title: str, bars: Sequence[tuple[str, float | None]], *, unit: str = "",
              digits: int = 1, width: int = 720, bar_height: int = 22) -> str:
    """One horizontal bar per (label, value); None is drawn as « sans donnée »."""
    description = "; ".join(f"{label} : {_fmt(v, unit, digits)}" for label, v in bars) or "aucune donnée"
    height = 60 + max(1, len(bars)) * (bar_height + 10) + 10
    ident, out = _open("barres", title, description, width, height)
    values = [v for _, v in bars if v is not None]
    if not bars:
        out.append(_text(width / 2, 70, "aucune donnée sur la période", anchor="middle"))
        return "\n".join(out + ["</svg>"])
    # Room on the right for the longest value caption (« 2 personnes par place »…).
    longest = max((len(_fmt(v, unit, digits)) for _, v in bars), default=8)
    left, right, top = 190, max(90, int(longest * 7 + 12)), 48
    plot_w = width - left - right
    top_value = nice_ceiling(max(values)) if values and max(values) > 0 else 1.0
    out.append(f'<line x1="{left}" y1="{top - 4}" x2="{left}" y2="{height - 10}" stroke="#888888" '
               f'stroke-width="1" aria-hidden="true"/>')
    for i, (label, value) in enumerate(bars):
        y = top + i * (bar_height + 10)
        out.append(_text(left - 8, y + bar_height * 0.7, label, anchor="end"))
        caption = f"{label} : {_fmt(value, unit, digits)}"
        if value is None:
            out.append(_text(left + 6, y + bar_height * 0.7, "sans donnée", fill="#666666"))
            continue
        length = plot_w * max(0.0, value) / top_value
        out.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar_height}" '
                   f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(caption)}</title></rect>')
        out.append(_text(left + length + 6, y + bar_height * 0.7, _fmt(value, unit, digits)))
    return "\n".join(out + ["</svg>"])


# ------------------------------------------------------------------ from a report


def month_label(month: str, *, with_year: bool = True) -> str:
    """`2026-03` -> `mars 2026` (or `mars`)."""
    year, number = month.split("-")
    return f"{MONTHS_FR[int(number) - 1]} {year}" if with_year else MONTHS_FR[int(number) - 1]


def file_active_chart(report: dict, *, modalities: Sequence[str] | None = None) -> str:
    """File active month by month, all modalities together and per modality used."""
    months = report.get("series", [])
    one_year = len({m["month"][:4] for m in months}) == 1
    labels = [month_label(m["month"], with_year=not one_year) for m in months]
    series: dict[str, list[float | None]] = {"toutes modalités": [m["file_active"]["all"] for m in months]}
    for modality in modalities or MODALITIES:
        values = [m["file_active"]["by_modality"].get(modality, 0) for m in months]
        if modalities or any(values):
            series[MODALITY_FR[modality]] = values
    period = report["period"]
    return line_chart(f"File active par mois ({period['from']} – {period['to']})", labels, series,
                      unit="personnes", digits=0)


def modality_bar_chart(report: dict, indicator: str = "file_active_reference_week") -> str:
    """One per-modality indicator of a report as bars (file active, occupancy, turnover,
    intensity per week, transport km)."""
    titles = {
        "file_active": ("File active de la période par modalité", "personnes", 0),
        "file_active_reference_week": ("File active de la semaine de référence par modalité", "personnes", 0),
        "occupancy": ("Taux d'occupation par modalité", "%", 1),
        "turnover": ("Taux de rotation par modalité", "personnes par place", 2),
        "intensity": ("Heures de prestations directes par personne et par semaine", "h", 1),
        "transport": ("Transports par modalité", "km", 0),
    }
    title, unit, digits = titles[indicator]
    part = report[indicator]["by_modality"]
    bars: list[tuple[str, float | None]] = []
    for modality in MODALITIES:
        value = part[modality]
        if indicator in ("occupancy", "turnover"):
            value = value["value"]
            value = None if value is None else (value * 100 if indicator == "occupancy" else value)
        elif indicator == "intensity":
            value = value["per_week"]
        elif indicator == "transport":
            value = value["km"]
        bars.append((MODALITY_FR[modality], value))
    return bar_chart(title, bars, unit=unit, digits=digits)
