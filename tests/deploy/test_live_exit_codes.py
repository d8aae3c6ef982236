"""Exit codes the unit relies on, from the real daemon (needs issue 3).

The unit sets Restart=on-failure with RestartPreventExitStatus=2: an invalid or missing config must
exit 2 (with one line saying what is wrong) so systemd does not restart it in a loop.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.deploy.processes import entry_point, free_port


def serve(config: Path) -> subprocess.CompletedProcess[str]:
    """``location-sidecar serve --config`` as the unit starts it, to its exit."""
    command = [entry_point(), "serve", "--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_invalid_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text(
        f'[server]\nlisten = "127.0.0.1:{free_port()}"\n'
        f'[history]\npath = "{tmp_path / "history.db"}"\nretention = "forever"\n'
    )
    result = serve(config)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "retention" in lines[0] and "forever" in lines[0]
    assert not (tmp_path / "history.db").exists()


def test_missing_config_exits_2(tmp_path: Path) -> None:
    """The unit always passes --config: a node without the file fails once, visibly."""
    missing = tmp_path / "sidecar.toml"
    result = serve(missing)
    assert result.returncode == 2, result.stderr
    assert str(missing) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
