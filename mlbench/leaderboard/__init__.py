"""The leaderboard: what a results folder holds, as tables, a report and a calibration.

``table`` (the leaderboard as text, Markdown, CSV or HTML), ``render`` (one titled table per
group, shared by every table here), ``analysis`` (the blocks and statistics over the stored
records), ``tuned`` (a tuned suite's chosen settings and every setting tried), ``report``
(one self-contained HTML file with plots) and ``calibrate`` (simulated A/A comparisons on a
test split's structure). The read side: imports the results store, the statistics, the
suite (run ids, selection) and the data's release tables, never the driver. This face is
light (the command line reads :data:`FORMATS` when it builds its parser): it hands on the
table's names; ``analysis``, ``report``, ``calibrate`` and ``tuned`` load numpy, pandas and
matplotlib, and their names are imported from those modules.
"""

from mlbench.leaderboard.render import FORMATS, titled_tables
from mlbench.leaderboard.table import (
    display_frame,
    finding_columns,
    footnote,
    leaderboard,
    leaderboard_frame,
    render,
    short_name,
)

__all__ = ["FORMATS", "display_frame", "finding_columns", "footnote", "leaderboard",
           "leaderboard_frame", "render", "short_name", "titled_tables"]
