"""Tables as text, Markdown or HTML: one titled table per group, the same for every table
of the leaderboard (the plain view and a tuned suite's settings). Light: tabulate loads
with the first table, so the command line reads :data:`FORMATS` from here at once."""

from __future__ import annotations

import html
import re

FORMATS = ("text", "md", "csv", "html", "json")
TABLEFMT = {"text": "simple", "md": "github", "html": "html"}  # tabulate's name per format


def titled_tables(groups, fmt: str) -> list[str]:
    """One part per ``(title, frame)`` of ``groups``: the frame as a table under its title.

    Args:
        groups: ``(title, DataFrame)`` pairs, in the order shown; every column is shown, as
            text (no number parsing).
        fmt: "text" (``== title ==``), "md" (``### title``) or "html" (``<h3>``, cells
            without padding).
    """
    from tabulate import tabulate

    parts = []
    for title, frame in groups:
        body = tabulate(frame, headers="keys", tablefmt=TABLEFMT[fmt], showindex=False,
                        disable_numparse=True)
        if fmt == "md":
            parts.append(f"### {title}\n\n{body}\n")
        elif fmt == "html":
            body = re.sub(r"<(td|th)([^>]*)>\s*(.*?)\s*</\1>", r"<\1\2>\3</\1>", body)
            parts.append(f"<h3>{html.escape(title)}</h3>\n{body}")
        else:
            parts.append(f"== {title} ==\n{body}\n")
    return parts
