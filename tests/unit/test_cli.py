"""Command-line behaviour that needs no services."""

from __future__ import annotations

import pytest

from streams.cli import main


def test_an_unreachable_broker_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["produce", "--count", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1" in err and "Traceback" not in err
