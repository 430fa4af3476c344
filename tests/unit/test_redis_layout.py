"""Redis key layout and the cluster selection: which URL picks the cluster client, which keys a
customer's tags go to, and that one customer's keys share a slot in cluster mode (slots computed
with redis-py's CRC16, the function Redis Cluster uses)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from redis.crc import key_slot

from streams.io.redis_client import mode_mismatch
from streams.io.redis_sink import RedisTagSink, audience_key, tags_key
from streams.settings import RedisSettings, Settings


def test_standalone_layout_is_unchanged() -> None:
    assert tags_key("tagstream", "c000042") == "tagstream:tags:c000042"
    assert audience_key("tagstream", "vip") == "tagstream:tag:vip"


def test_cluster_layout_wraps_the_customer_id_in_a_hash_tag() -> None:
    assert tags_key("tagstream", "c000042", hash_tag=True) == "tagstream:tags:{c000042}"


# customer ids that do not start with '}' (an empty hash tag makes Redis hash the whole key)
customer_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(lambda s: not s.startswith("}"))


@given(customer_ids, st.sampled_from(["tagstream", "it-x", "a:b"]))
def test_a_customers_keys_share_the_slot_of_its_id(customer_id: str, prefix: str) -> None:
    """Any key laid out as <prefix>:<kind>:{<id>} hashes by the customer id alone: a second kind
    of per-customer key would land on the same node as the tags hash."""
    tags = tags_key(prefix, customer_id, hash_tag=True)
    other_kind = f"{prefix}:state:{{{customer_id}}}"
    assert key_slot(tags.encode()) == key_slot(other_kind.encode())
    assert key_slot(tags.encode()) == key_slot(tags_key("other", customer_id, hash_tag=True).encode())


def test_customers_spread_over_slots() -> None:
    slots = {key_slot(tags_key("tagstream", f"c{i:06d}", hash_tag=True).encode()) for i in range(1000)}
    assert len(slots) > 900  # 16384 slots: the hash tag does not collapse customers together


def test_sink_commands_follow_the_layout() -> None:
    change = {"customer_id": "c1", "tag": "vip", "op": "add", "at_ms": 1, "rule_version": "v"}
    plain = RedisTagSink(None, prefix="p")  # type: ignore[arg-type]  # commands() does no I/O
    cluster = RedisTagSink(None, prefix="p", hash_tag=True)  # type: ignore[arg-type]
    assert [(c, k) for c, k, _ in plain.commands([change])] == [("HSET", "p:tags:c1"), ("SADD", "p:tag:vip")]
    assert [(c, k) for c, k, _ in cluster.commands([change])] == [("HSET", "p:tags:{c1}"), ("SADD", "p:tag:vip")]


@pytest.mark.parametrize(("url", "cluster", "client_url"), [
    ("redis://127.0.0.1:6379/0", False, "redis://127.0.0.1:6379/0"),
    ("rediss://h:6380/2", False, "rediss://h:6380/2"),
    ("unix:///run/redis.sock", False, "unix:///run/redis.sock"),
    ("redis+cluster://127.0.0.1:7000", True, "redis://127.0.0.1:7000"),
    ("rediss+cluster://user:pw@h:7000/0", True, "rediss://user:pw@h:7000/0"),
])
def test_the_url_scheme_selects_the_cluster_client(url: str, cluster: bool, client_url: str) -> None:
    rs = RedisSettings(url=url)
    assert rs.cluster is cluster
    assert rs.client_url() == client_url


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:6379", "the scheme must be one of"),
    ("http://h:1", "the scheme must be one of"),
    ("redis+cluster://h:7000/3", "database 0 only"),
    ("redis+cluster://a:7000,b:7001", "name one cluster node"),
    ("redis+cluster://", "name one cluster node"),
])
def test_bad_urls_fail_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(redis=RedisSettings(url=url))


def test_a_rejected_url_never_shows_its_password() -> None:
    with pytest.raises(ValidationError) as err:
        Settings(redis=RedisSettings(url="redis+cluster://user:s3cret@h:7000/5"))
    assert "s3cret" not in str(err.value)
    assert "redis+cluster://h:7000/5" in str(err.value)


@pytest.mark.parametrize("field", ["app_id", "key_prefix"])
def test_cluster_mode_rejects_a_hash_tag_in_the_prefix(field: str) -> None:
    redis = {"url": "redis+cluster://h:7000"}
    kwargs = {"app_id": "{shop}"} if field == "app_id" else {}
    if field == "key_prefix":
        redis["key_prefix"] = "shop}"
    with pytest.raises(ValidationError, match="would put every key in one slot"):
        Settings(redis=RedisSettings(**redis), **kwargs)  # type: ignore[arg-type]
    Settings(redis=RedisSettings(url="redis://h:6379/0", key_prefix="{shop}"))  # standalone: harmless


def test_mode_mismatch_says_which_scheme_to_use() -> None:
    cluster_url, plain_url = RedisSettings(url="redis+cluster://u:pw@h:7000"), RedisSettings(url="redis://h:6379")
    assert mode_mismatch(cluster_url, True) is None
    assert mode_mismatch(plain_url, False) is None
    wrong_cluster = mode_mismatch(cluster_url, False)
    assert wrong_cluster and "cluster mode disabled" in wrong_cluster and "pw" not in wrong_cluster
    wrong_plain = mode_mismatch(plain_url, True)
    assert wrong_plain and "redis+cluster://" in wrong_plain
