"""Window maths and each aggregation, alone (no network)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.engine.features.aggregations import AGGREGATIONS
from streams.engine.features.windows import (
    bucket_expiry_ms,
    bucket_of,
    default_resolution_ms,
    oldest_live_bucket,
)


def is_live(bucket: int, now_ms: int, resolution_ms: int, window_ms: int) -> bool:
    """The definition the window maths must agree with: a bucket is live until its expiry."""
    return bucket_expiry_ms(bucket, resolution_ms, window_ms) > now_ms


@pytest.mark.parametrize("window_ms,expected", [(5_000, 83), (3_600_000, 60_000), (30 * 86_400_000, 43_200_000),
                                                (10, 1)])
def test_default_resolution_is_a_sixtieth_of_the_window(window_ms: int, expected: int) -> None:
    assert default_resolution_ms(window_ms) == expected


@pytest.mark.parametrize("res,window", [(1, 5), (100, 5_000), (60_000, 3_600_000), (7, 50)])
def test_oldest_live_bucket_is_the_boundary(res: int, window: int) -> None:
    for now in range(0, 20 * window, max(1, window // 17)):
        b = oldest_live_bucket(now, res, window)
        assert is_live(b, now, res, window)
        assert not is_live(b - 1, now, res, window)


@pytest.mark.parametrize("ts,res,window", [(0, 100, 5_000), (12_345, 100, 5_000),
                                           (1_700_000_000_123, 60_000, 3_600_000)])
def test_an_event_counts_for_at_least_the_window_and_at_most_one_step_more(ts: int, res: int, window: int) -> None:
    b = bucket_of(ts, res)
    expiry = bucket_expiry_ms(b, res, window)
    assert ts + window < expiry <= ts + window + res
    assert is_live(b, expiry - 1, res, window) and not is_live(b, expiry, res, window)


VALUES = [(5.0, 1_000), (2.5, 3_000), (9.0, 2_000), (2.5, 500)]


@pytest.mark.parametrize("name,expected", [
    ("count", 4), ("sum", 19.0), ("min", 2.5), ("max", 9.0), ("avg", 4.75), ("first", 2.5), ("last", 2.5),
])
def test_aggregation_results(name: str, expected: object) -> None:
    agg = AGGREGATIONS[name]
    acc = None
    for v, ts in VALUES:
        acc = agg.initialize(v, ts) if acc is None else agg.update(acc, v, ts)
    assert agg.finish(acc) == expected


@pytest.mark.parametrize("name", ["count", "sum", "min", "max", "avg", "first", "last", "since_last"])
def test_aggregations_do_not_depend_on_arrival_order(name: str) -> None:
    agg = AGGREGATIONS[name]
    rnd = random.Random(7)
    values = [(rnd.choice([1.0, 2.0, 3.5]), rnd.randrange(0, 50)) for _ in range(8)]  # with ts ties
    results = set()
    for perm in itertools.islice(itertools.permutations(values), 200):
        acc = None
        for v, ts in perm:
            acc = agg.initialize(v, ts) if acc is None else agg.update(acc, v, ts)
        results.add(repr(acc))
    assert len(results) == 1


@pytest.mark.parametrize("name", ["count", "sum", "min", "max", "avg", "first", "last"])
def test_merging_buckets_equals_folding_everything(name: str) -> None:
    agg = AGGREGATIONS[name]
    a = agg.initialize(*VALUES[0])
    a = agg.update(a, *VALUES[1])
    b = agg.initialize(*VALUES[2])
    b = agg.update(b, *VALUES[3])
    whole = agg.initialize(*VALUES[0])
    for v in VALUES[1:]:
        whole = agg.update(whole, *v)
    assert agg.finish(agg.merge(a, b)) == agg.finish(whole)
    assert agg.result([a, b]) == agg.finish(whole)


@pytest.mark.parametrize("name,empty", [("count", 0), ("sum", 0), ("min", None), ("max", None), ("avg", None),
                                        ("first", None), ("last", None)])
def test_result_over_no_buckets(name: str, empty: object) -> None:
    assert AGGREGATIONS[name].result([]) == empty


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=1, max_size=40))
def test_the_oldest_bucket_is_the_smallest_index(buckets: list[int]) -> None:
    from streams.engine.features.runtime import _oldest

    assert _oldest(buckets) == min(buckets)
    assert _oldest(dict.fromkeys(buckets).keys()) == min(buckets)
    assert _oldest({str(i): b for i, b in enumerate(buckets)}.values()) == min(buckets)


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e7, 1e7),
                 st.integers(-10**9, 10**9).map(lambda n: n / 100),
                 st.integers(-10**12, 10**12).map(lambda n: n * 1e-7),
                 st.lists(st.sampled_from([0.1, 0.2, 12.99, 7.5, 19.95, 0.3, 1e-7]), max_size=30).map(sum)))
@example(-0.0)
@example(-1e-9)
@example(2.5e-6)
@example(0.0000005)
@example(1099511.627776)
@settings(max_examples=2000, deadline=None)
def test_round6_is_round_to_six_decimals(x: float) -> None:
    """``aggregations.round6`` (the sums' and averages' rounding, compiled) is ``round(x, 6)``,
    to the bit and the sign of a zero."""
    import math

    from streams.engine.features.aggregations import round6

    got, want = round6(x), round(x, 6)
    assert (math.isnan(got) and math.isnan(want)) or (got == want and math.copysign(1, got) == math.copysign(1, want))


@given(st.integers(0, 400 * 86_400_000), st.integers(1_600_000_000_000, 1_900_000_000_000))
@settings(max_examples=2000, deadline=None)
def test_a_time_since_value_is_the_milliseconds_rounded_to_three_decimals(elapsed: int, last: int) -> None:
    from streams.engine.features.runtime import runtime_for
    from tag_rules.compiler import FeatureDef

    rt = runtime_for(FeatureDef(name="since_any", key="k", agg="since_last", field=None, window_ms=None,
                                resolution_ms=None, sources=frozenset({"pos"}), where=None), (60.0,))
    assert rt.value(last, last + elapsed) == round(elapsed / 1000, 3)
