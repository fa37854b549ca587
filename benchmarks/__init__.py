"""Benchmarks of prunebench's core against plain PyTorch. Run: ``python -m benchmarks``."""
