"""SplitMix64: a tiny deterministic PRNG for cheap per-customer random streams.

Seeding a Mersenne Twister (:class:`random.Random`) per customer costs more than generating a
dozen events, so :mod:`streams.tools.customers` derives each profile from one of these instead.
"""

from __future__ import annotations

__all__ = ["SplitMix64"]


class SplitMix64:
    """Tiny deterministic PRNG (SplitMix64) for cheap per-customer streams."""

    __slots__ = ("state",)
    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self._MASK

    def next(self) -> int:
        """The next raw 64-bit output."""
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self.next() >> 11) * (1.0 / (1 << 53))

    def choice(self, seq: tuple[str, ...]) -> str:
        """A uniformly chosen element of ``seq``."""
        return seq[int(self.random() * len(seq))]

    def weighted(self, seq: tuple[str, ...], weights: tuple[float, ...]) -> str:
        """An element of ``seq`` chosen with the relative ``weights``."""
        x = self.random() * sum(weights)
        for item, w in zip(seq, weights, strict=True):
            x -= w
            if x < 0:
                return item
        return seq[-1]
