"""Measurement tools: scripts that time or check the harness, not part of the library.

Run from the repository root (each has ``--help``):

    python -m tools.data_speed --images 64 --png-size 1024 --size 256   # cache vs PNG decoding
    python -m tools.sim_learnability --images 4000 --size 64 --epochs 8 # CXR14-sim per-class AUCs
    python -m tools.train_throughput --backbone resnet18 --head bilinear # engine loop vs bare loop

Loss-kernel benchmarks are in ``benchmarks/`` (``pytest benchmarks/``).
"""
