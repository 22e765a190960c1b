"""The walk as one self-contained HTML page a learner can poke at (``colnn explain --html``).

The page is the walk's own data (:class:`~colnn.apps.explain.walk.Walk`: every
step's code, shape, reason, values, colours and :class:`Link` sources) as
JSON, with the page's CSS and JavaScript (``page.css``, ``page.js``, package
data next to this module) inlined into ``page.html``: no network, no fonts, no
CDN. The script draws the steps, traces a number through them by following the
links, outlines a window when one of its rows is clicked, and reveals the walk
step by step (Previous/Next, the arrow keys, "show all").

No third-party package is needed; :meth:`Walk._repr_html_` shows the same page
inline in Jupyter.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.arrayfile import write_whole
from .palette import CHANNEL_COLORS, FILTER_COLORS, PADDING_COLOR
from .records import BAND_TITLES, Step, cell_text, window_of_label

if TYPE_CHECKING:  # for the annotations only: walk.py imports this module to show a Walk in Jupyter
    from .walk import Walk

__all__ = ["page_data", "render_html", "save_html"]


def _values(array: np.ndarray) -> list[float | str]:
    """JSON has no infinities: they travel as the strings ``"inf"`` and ``"-inf"``."""
    return [float(v) if np.isfinite(v) else ("-inf" if v < 0 else "inf") for v in np.asarray(array, float).ravel()]


def _flags(mask: np.ndarray | None) -> list[int] | None:
    return None if mask is None else [int(v) for v in np.asarray(mask).ravel()]


def _step_data(step: Step) -> dict[str, Any]:
    values = np.asarray(step.array, float)
    return {
        "key": step.key,
        "label": step.label,
        "title": step.title,
        "code": step.code,
        "why": step.why,
        "shape": list(step.shape),
        "band": step.band,
        "palette": step.palette,
        "outer": step.outer,
        "ring": list(step.ring),
        "values": _values(values),
        "text": [cell_text(v) for v in values.ravel()],
        "channel": _flags(step.channel),
        "padded": _flags(step.padded),
        "chosen": _flags(step.chosen),
        "unused": _flags(step.unused),
        "row_labels": None if step.row_labels is None else list(step.row_labels),
        "row_windows": None if step.row_labels is None else [window_of_label(label) for label in step.row_labels],
        "column_labels": None if step.column_labels is None else list(step.column_labels),
        "sources": [
            {"key": link.key, "copy": link.copy,
             "index": link.index.reshape(-1, link.index.shape[-1]).tolist()}
            for link in step.sources
        ],
    }


def page_data(walk: Walk) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data taken from ``walk`` alone.

    ``windows[r]`` is im2col row r's window: ``[image, top, left, height, width]``
    in the input's unpadded coordinates (top/left may be negative: padding).
    """
    window = walk.window
    windows = []
    if window is not None:
        images = walk.steps[0].shape[0]
        for image, out_y, out_x in np.ndindex(images, window.out_h, window.out_w):
            windows.append([image, out_y * window.stride_h - window.pad_h, out_x * window.stride_w - window.pad_w,
                            window.kernel_h, window.kernel_w])
    return {
        "headline": f"colnn explain: {walk.headline}, on {walk.source}",
        "notes": list(walk.notes),
        "pad_text": cell_text(walk.pad_value),
        "band_titles": BAND_TITLES,
        "windows": windows,
        "colors": {"channel": list(CHANNEL_COLORS), "filter": list(FILTER_COLORS), "padding": PADDING_COLOR},
        "steps": [_step_data(step) for step in walk.steps],
    }


def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render_html(walk: Walk, *, inline: bool = False) -> str:
    """The page as a string; ``inline=True`` wraps it in an ``<iframe srcdoc>`` for Jupyter.

    The iframe keeps the page's CSS and script apart from the notebook's.
    """
    # "</" inside a <script> would end it; JSON allows the escaped form.
    data = json.dumps(page_data(walk), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    page = (
        _resource("page.html")
        .replace("/*PAGE_CSS*/", _resource("page.css"))
        .replace("/*PAGE_JS*/", _resource("page.js"))
        .replace("/*WALK_DATA*/", data)
        .replace("<!--TITLE-->", html.escape(f"colnn explain: {walk.headline}"))
    )
    if not inline:
        return page
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" title="colnn explain" '
            'style="width:100%;height:720px;border:1px solid #ccc"></iframe>')


def save_html(walk: Walk, path: str | Path) -> None:
    """Write :func:`render_html` to ``path`` (UTF-8), whole or not at all (an earlier file stays if it fails)."""
    page = render_html(walk)

    def write(partial: Path) -> None:
        partial.write_text(page, encoding="utf-8")

    write_whole(path, write)
