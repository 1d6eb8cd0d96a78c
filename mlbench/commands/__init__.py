"""The sub-commands of ``python -m mlbench`` by room; each module's ``register(subparsers)``
adds its own (as ``mlbench.data.cli`` does for ``data``), and ``mlbench.cli`` assembles them."""
