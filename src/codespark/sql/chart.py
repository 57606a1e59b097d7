"""A chart for a result that has a natural one: a time series (line) or counts per category (bar).

PNG through matplotlib; ``.html`` wraps the same picture in a page with the question and the SQL.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from codespark.errors import InvalidRequestError
from codespark.sql.database import Rows

_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([ T]\d{2}(:\d{2})?(:\d{2})?)?$")
MAX_BARS = 40


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return isinstance(value, dt.date | dt.datetime) or (isinstance(value, str) and bool(_DATE.match(value)))


def chart_kind(rows: Rows) -> str | None:
    """``line`` for (time, number…), ``bar`` for (category, number) with few categories, else None."""
    if len(rows.columns) < 2 or len(rows.rows) < 2:
        return None
    first = [r[0] for r in rows.rows]
    numbers = [i for i in range(1, len(rows.columns)) if all(_is_number(r[i]) for r in rows.rows)]
    if not numbers:
        return None
    if all(_is_time(v) for v in first):
        return "line"
    if all(isinstance(v, str) for v in first) and len(rows.rows) <= MAX_BARS:
        return "bar"
    return None


def render_chart(rows: Rows, path: Path, title: str, sql: str) -> str:
    """Draw ``rows`` to ``path`` (.png or .html); return the kind of chart drawn."""
    kind = chart_kind(rows)
    if kind is None:
        raise InvalidRequestError(
            "This result has no natural chart: it needs a date or category column followed by numbers "
            "(e.g. orders per month, or patients per city)."
        )
    if path.suffix.lower() not in (".png", ".html"):
        raise InvalidRequestError(f"Charts are written as .png or .html, not {path.suffix or 'no extension'}.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    labels = [str(r[0]) for r in rows.rows]
    for i in range(1, len(rows.columns)):
        if not all(_is_number(r[i]) for r in rows.rows):
            continue
        values = [float(r[i]) for r in rows.rows]
        if kind == "line":
            ax.plot(labels, values, marker="o", label=rows.columns[i])
        else:
            ax.bar(labels, values, label=rows.columns[i])
    ax.set_title(title)
    ax.set_xlabel(rows.columns[0])
    ax.tick_params(axis="x", labelrotation=45)
    if len(rows.columns) > 2:
        ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    png = buffer.getvalue()
    if path.suffix.lower() == ".png":
        path.write_bytes(png)
    else:
        encoded = base64.b64encode(png).decode()
        path.write_text(
            f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<h2>{html.escape(title)}</h2><img alt='chart' src='data:image/png;base64,{encoded}'>"
            f"<pre>{html.escape(sql)}</pre>",
            encoding="utf-8",
        )
    return kind
