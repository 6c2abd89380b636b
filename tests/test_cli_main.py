"""The `lerobot-assets` entry point: every error is one line on stderr, a traceback only with --debug."""

import errno

import pytest

import lerobot_assets.checks.validate as validate_module
from lerobot_assets.cli.main import main, one_line


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    return int(exit_info.value.code or 0)


def test_one_line() -> None:
    assert one_line(OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet")) == "/data/x.parquet: no space left on device"
    assert one_line(FileNotFoundError(errno.ENOENT, "No such file or directory", "meta/info.json")) == "meta/info.json: No such file or directory"
    assert one_line(ValueError("first\nsecond\nthird")) == "first (+2 more lines with --debug)"
    assert one_line(KeyError()) == "KeyError"


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("meta/episodes: something broke\ndetail one\ndetail two")

    monkeypatch.setattr(validate_module, "validate_dataset", broken)
    assert _run(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == "error: meta/episodes: something broke (+2 more lines with --debug)\n"
    with pytest.raises(RuntimeError, match="something broke"):
        main(["validate", str(tmp_path), "--debug"])


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["validate"]) == 2
    assert "Missing argument 'root'" in capsys.readouterr().err
    assert _run(["no-such-command"]) == 2


def test_interrupt_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(validate_module, "validate_dataset", interrupted)
    assert _run(["validate", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
