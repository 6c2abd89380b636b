"""`lerobot-assets byte-index ROOT [--workers N] [--force]`."""

from __future__ import annotations

import pyarrow.parquet as pq
from typer.testing import CliRunner

from lerobot_assets.byteindex.testing import write_sample_dataset
from lerobot_assets.cli import app


def test_byte_index_command_builds_then_skips_then_forces(tmp_path):
    root = tmp_path / "ds"
    write_sample_dataset(root)
    runner = CliRunner()
    first = runner.invoke(app, ["byte-index", str(root), "--workers", "2"])
    assert first.exit_code == 0, first.output
    assert "3 files (3 indexed, 0 unchanged), 12 episode segments, 270 frames" in first.output
    assert pq.read_table(root / "meta/byte_index/segments.parquet").num_rows == 12
    second = runner.invoke(app, ["byte-index", str(root)])
    assert second.exit_code == 0 and "(0 indexed, 3 unchanged)" in second.output
    forced = runner.invoke(app, ["byte-index", str(root), "--force"])
    assert forced.exit_code == 0 and "(3 indexed, 0 unchanged)" in forced.output


def test_byte_index_command_reports_missing_metadata(tmp_path):
    result = CliRunner().invoke(app, ["byte-index", str(tmp_path)])
    assert result.exit_code == 1
    assert "meta/info.json is missing" in result.output
    assert not (tmp_path / "meta").exists()
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": 30}')
    result = CliRunner().invoke(app, ["byte-index", str(tmp_path)])
    assert result.exit_code == 1
    assert "no episodes parquet" in result.output
