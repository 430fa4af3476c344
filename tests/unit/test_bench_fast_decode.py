"""benchmarks.fast_decode measures what it says: the Python module in one process, the compiled one in the other."""

from __future__ import annotations

import pytest

from benchmarks import fast_decode


def test_both_variants_run_and_are_what_they_claim(capsys: pytest.CaptureFixture[str]) -> None:
    assert fast_decode.main(["--records", "300", "--repeat", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("python ") and "(fast_decode.py," in lines[0]
    assert lines[1].startswith("compiled ") and "(fast_decode.cpython-" in lines[1]
    assert lines[2].startswith("compiled / python: ")
