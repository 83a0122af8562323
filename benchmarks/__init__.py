"""Benchmarks of the lab against plain PyTorch loops (``make bench``); not part of the installed package."""
