"""``tagstream demo --identity``: what identity resolution adds, shown on the demo's own stream.

The worker runs with ``TAGSTREAM_IDENTITY__ENABLED=true`` and the generator in identity mode
(anonymous sessions that log in later, cards and accounts in separate id spaces, CRM records for
part of the base, shared kiosk devices; docs/identity.md). At the end the demo prints the match
rate before and after resolution twice: computed from the produced stream by the pure graph
(``streams.tools.match_rate``), and as the worker measured it (its identity metrics).
"""

from __future__ import annotations

from collections.abc import Iterator

from streams.tools.generator import GeneratedEvent, RetailGenerator
from streams.tools.match_rate import measure_events, render
from streams.tools.prom import Samples


def labelled(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for lb, v in samples.get(name, []) if all(lb.get(k) == x for k, x in labels.items()))


def identity_done(samples: Samples) -> float:
    """Source events done, identity records left out (they are links, not events)."""
    return sum(labelled(samples, f"tagstream_events_{what}_total") - labelled(
        samples, f"tagstream_events_{what}_total", source="identity") for what in ("processed", "anonymous", "invalid"))


def report(seed: int, customers: int, count: int, samples: Samples) -> Iterator[str]:
    events: list[GeneratedEvent] = RetailGenerator(seed=seed, customers=customers, bad_ratio=0.002,
                                                   identity=True).take(count)
    yield render(measure_events(events), "   match rate of the produced stream (pure identity graph):")
    known = labelled(samples, "tagstream_identity_events_total", attribution="known")
    counted = labelled(samples, "tagstream_identity_events_total")
    members = labelled(samples, "tagstream_identity_members", linked="all")
    online = labelled(samples, "tagstream_identity_members", linked="with_account")
    links = {r: labelled(samples, "tagstream_identity_links_total", result=r)
             for r in ("merged", "unchanged", "refused", "repeat")}
    merges = labelled(samples, "tagstream_identity_merges_total", result="applied")
    yield (f"   as the worker resolved it: {known / counted if counted else 0:.1%} of {counted:,.0f} events counted "
           f"under a member or an account; {online / members if members else 0:.1%} of {members:,.0f} linked cards "
           f"reach an online account; links merged {links['merged']:,.0f}, unchanged {links['unchanged']:,.0f}, "
           f"refused {links['refused']:,.0f}, repeats not sent {links['repeat']:,.0f}; state merges {merges:,.0f}")
