"""mlbench: a benchmark harness for multi-label medical-imaging losses."""

__version__ = "0.1.0"
