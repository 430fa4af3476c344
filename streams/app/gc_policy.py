"""The worker's garbage-collector policy: a young threshold, and long-lived objects frozen.

Python's cyclic collector walks every tracked object at a full (generation 2) collection, and the
worker's event loop stands still meanwhile: no events, no heartbeats, no ``/metrics``. Customer
states are many small containers (a state with 20 features is ~40 dicts and lists): 300,000 of them
are ~13 million tracked objects and one full collection took 2.6 s on this project's 2-core machine
(``python -m benchmarks.gc_pause``); with a million customers a pause is several seconds, once
every few minutes of traffic, and a session timeout can expire during one.

Customer states are acyclic (plain dicts, lists, numbers, strings): reference counting frees a
replaced or deleted one, the cyclic collector never has to. So, with ``freeze`` (``TAGSTREAM_ENGINE__GC_FREEZE``,
on by default):

* once the tables are recovered (``after_recovery``), and
* after every full collection (a ``gc.callbacks`` hook),

``gc.freeze()`` moves every object alive at that moment into the permanent generation, which
collections never walk: a later full collection walks only what was made since. What this gives up:
a reference cycle frozen while alive and garbage later is never collected (a leak bounded by what
such cycles hold; none of ours make them, faust's and aiokafka's per-rebalance objects can: it would
show as resident memory growing with a flat state). ``tagstream_gc_pause_seconds{generation}`` shows
each collection's pause. The frozen count is not exported: ``gc.get_freeze_count()`` walks the whole
permanent generation (28 ms per 2 million objects), and a gauge calling it made every scrape that long
(a recovery polled every 0.2 s took 5 % longer).

The young threshold (``TAGSTREAM_ENGINE__GC_YOUNG_THRESHOLD``, 50,000): a customer batch keeps its tag
changes (dicts, futures of their records) and its items alive until they are published; with Python's
700, tens of thousands of them per batch moved to the old generation and made the collector walk every
customer state about once per batch (with 1,000 tags, a quarter of the customer stage's CPU:
benchmarks/RULES.md). At 10,000 a batch's live objects still crossed the threshold: 56 young
collections per 200,000 events (79 with identity resolution, which holds more per batch), 0.3 / 0.47 s
of the collector; at 50,000, 5 / 9 and 0.06 / 0.1 s, each young pause ~11 ms instead of ~5
(benchmarks/README.md, *Garbage-collector pauses*). Nothing of ours relies on cycles being collected soon.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from streams.io.metrics import Metrics

_freeze = False
_pauses: tuple[Any, ...] = ()
"""The pause histogram's series per generation, made before any collection reports to them (a
callback runs inside whichever allocation triggered the collection: it must not create series)."""
_started = 0.0


def tune_gc(young_threshold: int) -> None:
    """Sets the young generation's threshold (0: leaves Python's thresholds alone)."""
    if young_threshold > 0:
        gc.set_threshold(young_threshold, *gc.get_threshold()[1:])


def install(young_threshold: int, *, freeze: bool) -> None:
    """The worker's policy, once at start (before its state is loaded)."""
    global _freeze
    tune_gc(young_threshold)
    _freeze = freeze
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def uninstall() -> None:
    """Back to Python's own behaviour (tests): the hook removed, nothing frozen any more."""
    global _freeze, _pauses
    _freeze = False
    _pauses = ()
    if _on_collection in gc.callbacks:
        gc.callbacks.remove(_on_collection)
    gc.unfreeze()


def instrument(metrics: Metrics) -> None:
    """Reports pauses to ``metrics`` from now on."""
    global _pauses
    _pauses = tuple(metrics.gc_pause.labels(str(generation)) for generation in range(3))


def after_recovery() -> int:
    """The state is loaded: freezes it (with ``freeze``); returns the objects frozen in all."""
    if _freeze:
        gc.freeze()
    return gc.get_freeze_count()


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    generation = info.get("generation", 0)
    if _pauses:
        _pauses[generation].observe(time.perf_counter() - _started)
    if _freeze and generation == 2:
        gc.freeze()  # what survived a full collection is long-lived: never walk it again
