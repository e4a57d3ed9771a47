"""Loaders for public task sets (QA with gold answers, function-calling benchmarks)."""
