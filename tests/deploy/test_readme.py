"""deploy/README.md stays in step with the files it documents."""

from __future__ import annotations

import re

from tests.deploy import artifacts

README = artifacts.DEPLOY / "README.md"


def test_every_alert_is_documented() -> None:
    text = README.read_text()
    for alert in artifacts.alert_names():
        assert f"`{alert}`" in text, alert


def test_listed_files_exist() -> None:
    rows = re.findall(r"^\| `([^`]+)` \|", README.read_text(), re.M)
    paths = [row for row in rows if "/" in row or row.endswith((".toml", ".json", ".yml"))]
    assert len(paths) >= 6
    for path in paths:
        assert list(artifacts.DEPLOY.glob(path)), path


def test_drop_in_examples_are_explained() -> None:
    text = README.read_text()
    for drop_in in artifacts.DROP_INS:
        assert f"systemd/examples/{drop_in.name}" in text, drop_in.name


def test_main_readme_links_here() -> None:
    assert "(deploy/README.md)" in (artifacts.ROOT / "README.md").read_text()
