"""Measurement of one storage backend's latency and throughput (one module per kind)."""
