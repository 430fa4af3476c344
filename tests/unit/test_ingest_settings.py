"""Ingest's settings: the own consumer is the default, and its batch fits the de-duplication memory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.settings import EngineSettings, KafkaSettings, Settings


def test_the_own_consumer_is_the_default_and_its_batch_fits_the_dedup_memory() -> None:
    s = Settings()
    assert s.kafka.ingest_consumer and s.kafka.ingest_batch_max <= s.engine.dedup_max_ids


def test_a_batch_larger_than_the_dedup_memory_is_refused_with_the_settings_named() -> None:
    with pytest.raises(ValidationError, match=r"INGEST_BATCH_MAX \(2000\) must be at most .*DEDUP_MAX_IDS \(1000\)"):
        Settings(kafka=KafkaSettings(ingest_batch_max=2000))
    # fine when the memory is as large, with de-duplication off, or with the Faust agent
    Settings(kafka=KafkaSettings(ingest_batch_max=2000), engine=EngineSettings(dedup_max_ids=2000))
    Settings(kafka=KafkaSettings(ingest_batch_max=2000), engine=EngineSettings(dedup_horizon_ms=0))
    Settings(kafka=KafkaSettings(ingest_batch_max=2000, ingest_consumer=False))
