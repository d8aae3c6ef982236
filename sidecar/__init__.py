"""The per-node daemon: probes, history, estimators, ranking API, metrics."""
