"""Sliding-window maths over fixed-size buckets.

A windowed feature keeps one accumulator per *bucket* of ``resolution_ms`` (bucket ``b`` covers
``[b * resolution_ms, (b + 1) * resolution_ms)``). At instant ``now_ms`` a window of ``window_ms``
contains every bucket whose end lies after the window start::

    (b + 1) * resolution_ms > now_ms - window_ms

so an event counts for at least ``window_ms`` after its ``ts`` and at most one resolution step
longer. The instant a bucket leaves the window is therefore exact and known in advance,
``expiry_ms(b) = (b + 1) * resolution_ms + window_ms``; the due-time index relies on it.
"""

from __future__ import annotations

from typing import Final

DEFAULT_STEPS_PER_WINDOW: Final = 60
"""A window is cut into this many buckets unless a feature gives its own resolution."""


def default_resolution_ms(window_ms: int) -> int:
    """Bucket size for a window: 1/60 of it (1 min for 1 h, 12 h for 30 d), at least 1 ms."""
    return max(1, window_ms // DEFAULT_STEPS_PER_WINDOW)


def bucket_of(ts_ms: int, resolution_ms: int) -> int:
    """Index of the bucket holding ``ts_ms``."""
    return ts_ms // resolution_ms


def bucket_expiry_ms(bucket: int, resolution_ms: int, window_ms: int) -> int:
    """First instant at which ``bucket`` is no longer inside the window."""
    return (bucket + 1) * resolution_ms + window_ms


def oldest_live_bucket(now_ms: int, resolution_ms: int, window_ms: int) -> int:
    """Smallest bucket index still inside the window at ``now_ms``.

    Bucket ``b`` is live iff ``expiry_ms(b) > now_ms`` iff ``b > (now_ms - window_ms) / res - 1``.
    """
    return (now_ms - window_ms) // resolution_ms
