"""Every reader takes its defaults from ``strategies.defaults``: daemon, CLI and clients."""

from __future__ import annotations

from pathlib import Path

from sidecar import cli, weights
from sidecar.config import parse_config
from strategies import defaults, nova, sidecar_client
from strategies.config import StrategyConfig
from strategies.metrics import MetricsPolicy


def test_the_nova_fallback_orders_like_the_sidecar() -> None:
    daemon = parse_config({}, default_history=Path("/tmp/h.db")).strategy
    assert list(nova.DEFAULT_PREFERENCE) == daemon.store_type_preference
    assert daemon.store_type_preference == cli.EXAMPLE_PREFERENCE
    assert daemon.store_type_preference == ["rbd", "file", "swift", "http", "s3"]


def test_listen_address_size_and_policy_come_from_one_place() -> None:
    config = parse_config({}, default_history=Path("/tmp/h.db"))
    assert config.server.listen == defaults.LISTEN == "127.0.0.1:29292"
    assert f"http://{config.server.listen}" == sidecar_client.DEFAULT_URL
    assert weights.DEFAULT_IMAGE_SIZE == MetricsPolicy().default_image_size == 1024**3
    assert config.strategy.metrics.max_age == MetricsPolicy().max_age == defaults.MAX_AGE
    assert MetricsPolicy().near_tie_band == defaults.NEAR_TIE_BAND


def test_the_two_default_strategies_are_named_and_differ_on_purpose() -> None:
    # Glance's own default for its option vs the daemon's, which exists to measure
    assert StrategyConfig().location_strategy == defaults.GLANCE_LOCATION_STRATEGY
    assert StrategyConfig.from_mapping({}).location_strategy == "location_order"
    daemon = parse_config({}, default_history=Path("/tmp/h.db"))
    assert daemon.strategy.location_strategy == defaults.SIDECAR_LOCATION_STRATEGY == "metrics"
