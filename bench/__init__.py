"""The benchmark: strategies side by side on emulated backends, and the sidecar's own cost.

Run it with ``make bench`` (``python -m bench``); ``BENCHMARKS.md`` holds the figures.
"""
