"""The size of the record batches the worker produces: a setting, bounded by what a broker takes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.app.topology import build_faust_app
from streams.settings import KafkaSettings, Settings


def test_the_worker_makes_record_batches_of_the_setting_s_size(tmp_path: Path) -> None:
    assert build_faust_app(Settings(data_dir=tmp_path)).conf.producer_max_batch_size == 512 * 1024
    app = build_faust_app(Settings(data_dir=tmp_path, kafka=KafkaSettings(batch_max_bytes=65_536)))
    assert app.conf.producer_max_batch_size == 65_536


@pytest.mark.parametrize("size", [1_000, 2 * 1024 * 1024])
def test_a_batch_size_a_broker_would_refuse_or_below_aiokafka_s_is_refused(size: int) -> None:
    with pytest.raises(ValidationError, match="batch_max_bytes"):
        KafkaSettings(batch_max_bytes=size)
