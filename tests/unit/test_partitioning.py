"""streams/io/partitioning.py: the customer partition is the one Kafka's default partitioner picks."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.io.partitioning import murmur2, partition_for


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=80))
def test_murmur2_is_aiokafka_s(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_known_partitions_of_the_java_client() -> None:
    # Kafka's own test vectors (clients UtilsTest.testMurmur2) and the partitions of a few keys
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") == -985981536 & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") == -1486304829 & 0xFFFFFFFF
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971 & 0xFFFFFFFF
    assert murmur2(b"abc") == 479470107
    assert [partition_for(f"c{i:06d}".encode(), 4) for i in range(8)] == [
        (aiokafka_murmur2(f"c{i:06d}".encode()) & 0x7FFFFFFF) % 4 for i in range(8)]
