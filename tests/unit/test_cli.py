"""Command-line behaviour that needs no services."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main


def test_an_unreachable_broker_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["produce", "--count", "1", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach Kafka at 127.0.0.1:1" in err and "Traceback" not in err


def test_version_names_tagstream_faust_and_python(capsys: pytest.CaptureFixture[str]) -> None:
    from streams.version import package_version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"tagstream {package_version('tagstream')} (faust-streaming ")
    assert "Python 3." in out and out.rstrip().endswith(", native engine)")


@pytest.mark.parametrize("argv", [
    [],
    ["nonsense"],
    ["produce", "--count", "-1"],
    ["produce", "--bad-ratio", "1.5"],
    ["produce", "--rate", "fast"],
    ["tags", "--limit", "-3", "c1"],
    ["rules"],
])
def test_argparse_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_tags_without_customer_or_audience_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tags"]) == 2
    assert capsys.readouterr().err == "tagstream tags: error: give a CUSTOMER_ID or --audience TAG\n"


def test_an_unknown_tag_is_a_usage_error_naming_the_known_tags(capsys: pytest.CaptureFixture[str]) -> None:
    # exits before connecting to Redis (none runs here)
    assert main(["tags", "--audience", "high_valu", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tagstream tags: error: unknown tag 'high_valu'; did you mean 'high_value'?")
    assert "cart_abandoner" in err and err.count("\n") == 1


@pytest.mark.parametrize("env, expected", [
    ({"TAGSTREAM_KAFKA__PARTITIONS": "0"}, "tagstream: bad setting TAGSTREAM_KAFKA__PARTITIONS: Input should be "
                                           "greater than or equal to 1 (got '0')\n"),
    ({"TAGSTREAM_LOG_FORMAT": "xml"}, "tagstream: bad setting TAGSTREAM_LOG_FORMAT: Input should be 'text' or "
                                      "'json' (got 'xml')\n"),
    ({"TAGSTREAM_KAFKA__NO_SUCH": "1"}, "tagstream: bad setting TAGSTREAM_KAFKA__NO_SUCH: unknown setting (see "
                                        "docs/operations.md for the TAGSTREAM_* variables)\n"),
    ({"TAGSTREAM_KAFKA": "not json"}, "tagstream: bad setting: error parsing value for field \"kafka\" from source "
                                      "\"EnvSettingsSource\" (nested settings are TAGSTREAM_<GROUP>__<NAME>)\n"),
])
@pytest.mark.parametrize("command", [["worker"], ["tags", "c1"], ["produce", "--count", "1"]])
def test_a_bad_setting_is_one_line_naming_the_variable_and_exits_2(
        env: dict[str, str], expected: str, command: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(command)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == expected


def test_a_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_PASSWORD", "s3cret")
    monkeypatch.setenv("TAGSTREAM_KAFKA__SASL_MECHANISM", "NOPE")
    with pytest.raises(SystemExit):
        main(["worker"])
    err = capsys.readouterr().err
    assert "TAGSTREAM_KAFKA__SASL_MECHANISM" in err and "s3cret" not in err


def test_a_bad_rule_set_stops_the_worker_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("features: []\ntags:\n  - name: t\n    when: nope >= 1\n")
    assert main(["worker", "--rules", str(bad)]) == 2
    assert "error(s)" in capsys.readouterr().err


def test_rules_the_core_cannot_run_stop_a_worker_told_to_use_it_with_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """TAGSTREAM_ENGINE__TAG_ENGINE=core with rules the core's tag engine cannot run: one line saying
    why, before Kafka is tried (none runs here)."""
    monkeypatch.setenv("TAGSTREAM_ENGINE__TAG_ENGINE", "core")
    monkeypatch.setenv("TAGSTREAM_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["worker", "--rules", "tag_rules/examples/sequences.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == ("tagstream: TAGSTREAM_ENGINE__TAG_ENGINE=core, but the core's tag engine cannot run rules "
                   "sequences-example-1: sequence or absence features: cart_abandoned_24h, view_then_buy_30d\n")


def test_an_unreachable_redis_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TAGSTREAM_REDIS__URL", "redis://127.0.0.1:1/0")
    assert main(["tags", "c1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tagstream tags: Redis: ") and "127.0.0.1:1" in err and err.count("\n") == 1
