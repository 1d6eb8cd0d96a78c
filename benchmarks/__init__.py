"""Loss-throughput benchmarks (pytest-benchmark): ``pytest benchmarks/``; table: ``python -m benchmarks.table bench.json``."""
