"""Tuning (moving): the two-stage run and the leaderboard's view of a tuned suite.
"""

from mlbench.tune.select import (
    MASK,
    SelectedRuns,
    annotate,
    render_settings,
    settings_frame,
    settings_text,
)

__all__ = ["MASK", "SelectedRuns", "annotate", "render_settings",
           "settings_frame", "settings_text"]
