"""Benchmarks of the connector against the simulator (``python bench/run.py``).

Not part of the package and not collected by pytest: timings are reported,
never asserted.
"""
