"""Benchmarks: agentrt's graph overhead (``executor``) and local model backends (``backends``).

Run them with ``python -m agentrt.bench.executor`` / ``python -m agentrt.bench.backends`` or
``agentrt bench executor`` / ``agentrt bench backends``.
"""
