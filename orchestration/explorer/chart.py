"""Accuracy and loss across rounds as inline SVG, drawn on the server (no JavaScript, no build).

Pure: takes the ``rounds`` list of a run's ``report.json`` and returns markup. Each chart has
a ``<title>`` and ``<desc>`` for screen readers, and :func:`data_table` gives the same numbers as a
table under the charts (for screen readers, and to copy them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

__all__ = ["FEDERATED_LABEL", "Series", "data_table", "federated_series", "line_chart", "report_series"]

WIDTH, HEIGHT = 420, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 12, 14, 34


@dataclass(frozen=True)
class Series:
    """One line: ``(round, value)`` points, a label and a CSS class for its colour."""

    label: str
    points: tuple[tuple[int, float], ...]
    css_class: str


def report_series(report: Mapping[str, Any]) -> tuple[list[Series], list[Series]]:
    """``(accuracy series, loss series)`` from a report; accuracy in percent."""
    rounds = [r for r in report.get("rounds", []) if isinstance(r, Mapping)]
    accuracy = [Series("fedtss", _points(rounds, "accuracy", 100.0), "s-fedtss")]
    loss = [Series("fedtss", _points(rounds, "loss", 1.0), "s-fedtss")]
    baseline = report.get("plaintext_fedavg") or {}
    for key, target, scale in (("accuracy", accuracy, 100.0), ("loss", loss, 1.0)):
        values = baseline.get(key) if isinstance(baseline, Mapping) else None
        if isinstance(values, list) and values:
            points = tuple((i, float(v) * scale) for i, v in enumerate(values, start=1)
                           if isinstance(v, (int, float)))
            target.append(Series("plaintext FedAvg", points, "s-baseline"))
    return ([s for s in accuracy if s.points], [s for s in loss if s.points])


#: The federated series' label: the clients' own evaluation, not the central test set.
FEDERATED_LABEL = "clients' own data (federated)"


def federated_series(evaluations: Mapping[int, Mapping[str, float]]) -> tuple[list[Series], list[Series]]:
    """``(accuracy series, loss series)`` of the clients' federated evaluation, ``{round k: metrics
    of round k's model}``; accuracy in percent, a series only when some round has its metric."""
    def points(key: str, scale: float) -> tuple[tuple[int, float], ...]:
        return tuple((k, float(m[key]) * scale) for k, m in sorted(evaluations.items())
                     if isinstance(m.get(key), (int, float)) and not isinstance(m.get(key), bool))

    accuracy = Series(FEDERATED_LABEL, points("accuracy", 100.0), "s-federated")
    loss = Series(FEDERATED_LABEL, points("loss", 1.0), "s-federated")
    return ([accuracy] if accuracy.points else [], [loss] if loss.points else [])


def _points(rounds: Sequence[Mapping[str, Any]], key: str, scale: float) -> tuple[tuple[int, float], ...]:
    return tuple((int(r["round"]), float(r[key]) * scale) for r in rounds
                 if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
                 and isinstance(r.get("round"), int))


def data_table(accuracy: Sequence[Series], loss: Sequence[Series]) -> Markup:
    """The charts' numbers, one row per round and one column per line, in a closed <details>."""
    columns = ([(f"{s.label} accuracy (%)", dict(s.points), "{:.2f}") for s in accuracy]
               + [(f"{s.label} loss", dict(s.points), "{:.4f}") for s in loss])
    rounds = sorted({r for _, values, _ in columns for r in values})
    if not rounds:
        return Markup("")
    head = "".join(f'<th scope="col">{escape(name)}</th>' for name, _, _ in columns)
    body = "".join(
        f'<tr><th scope="row">{r}</th>'
        + "".join(f"<td>{fmt.format(values[r]) if r in values else '-'}</td>" for _, values, fmt in columns)
        + "</tr>"
        for r in rounds
    )
    return Markup(
        '<details class="chart-data"><summary>The numbers behind the charts</summary><table>'
        '<caption class="sr-only">Accuracy and loss per round</caption>'
        f'<thead><tr><th scope="col">Round</th>{head}</tr></thead><tbody>{body}</tbody></table></details>'
    )


def line_chart(series: Sequence[Series], *, title: str, unit: str, highlight: int | None = None) -> Markup:
    """An SVG line chart of ``series`` over rounds; ``highlight`` marks one round."""
    points = [p for s in series for p in s.points]
    if not points:
        return Markup("")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    x_lo, x_hi = min(xs) - 0.3, max(max(xs), min(xs) + 1) + 0.3
    y_lo, y_hi = min(ys), max(ys)
    margin = (y_hi - y_lo) * 0.1 or abs(y_hi) * 0.1 or 1.0
    y_lo, y_hi = y_lo - margin, y_hi + margin

    def sx(x: float) -> float:
        return PAD_LEFT + (x - x_lo) / (x_hi - x_lo) * (WIDTH - PAD_LEFT - PAD_RIGHT)

    def sy(y: float) -> float:
        return HEIGHT - PAD_BOTTOM - (y - y_lo) / (y_hi - y_lo) * (HEIGHT - PAD_TOP - PAD_BOTTOM)

    desc = "; ".join(f"{s.label}: " + ", ".join(f"round {x} {y:.2f}{unit}" for x, y in s.points) for s in series)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{_id(title)}-t '
             f'{_id(title)}-d" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{_id(title)}-t">{escape(title)}</title><desc id="{_id(title)}-d">{escape(desc)}</desc>',
             f'<line class="axis" x1="{PAD_LEFT}" y1="{HEIGHT - PAD_BOTTOM}" x2="{WIDTH - PAD_RIGHT}" '
             f'y2="{HEIGHT - PAD_BOTTOM}"/>',
             f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{HEIGHT - PAD_BOTTOM}"/>']
    for value in (y_lo + margin, (y_lo + y_hi) / 2, y_hi - margin):
        parts.append(f'<text class="tick" x="{PAD_LEFT - 6}" y="{sy(value) + 4:.1f}" text-anchor="end">'
                     f'{value:.1f}</text>')
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" y1="{sy(value):.1f}" x2="{WIDTH - PAD_RIGHT}" '
                     f'y2="{sy(value):.1f}"/>')
    for x in sorted(set(xs)):
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle">{x}</text>')
    parts.append(f'<text class="tick" x="{(WIDTH + PAD_LEFT) / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">round</text>')
    if highlight is not None and x_lo <= highlight <= x_hi:
        parts.append(f'<line class="highlight" x1="{sx(highlight):.1f}" y1="{PAD_TOP}" x2="{sx(highlight):.1f}" '
                     f'y2="{HEIGHT - PAD_BOTTOM}"/>')
    for s in series:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline class="{s.css_class}" points="{path}"/>')
        parts += [f'<circle class="{s.css_class}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"/>' for x, y in s.points]
    parts.append("</svg>")
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption>{escape(title)}</figcaption></figure>')


def _id(title: str) -> str:
    return "chart-" + "".join(c if c.isalnum() else "-" for c in title.lower())
