"""A large rule set over the reference features: the reference workload's 33 features and 50
tags, plus generated tags up to ``--tags`` (default 1,000) — issue 12, the 1,000-rule figure.

    python -m benchmarks.rules_1000 [--tags 1000] [--seed 12] [--selective] [--out PATH]

The committed ``benchmarks/rules_1000.yaml`` is this script's output with the defaults, and
``benchmarks/rules_1000_selective.yaml`` with ``--selective`` (a unit test regenerates both and
compares). The generated tags are what a marketing team accumulates:
segments over the same features with many thresholds — one threshold (``spend_30d >= 750``), a
band (``3 <= purchases_30d < 6``), two conditions (``carts_24h >= 2 and purchases_7d == 0``), an
either/or, recency (``since_last_purchase >= days(45)``), a ratio of two features, and a few
with hysteresis or flap control. Thresholds come from per-feature ladders that span what the
reference load produces (counts 1…50, amounts 25…10,000), so audiences range from most
customers to almost none.

``--selective`` draws the same kinds of tags over the same features, but narrow, as a team's real
segments mostly are: every threshold a customer must reach comes from the top third of its
ladder (``UPPER``: counts 20…50, amounts 1,000…10,000), the second condition of a conjunction
narrows further (another high threshold, staying under a low count, or none of something:
``refunds_30d == 0``), recency comes with a high threshold beside it, ratios only over customers
with a high count. Its tags change far less often than the default set's (benchmarks/RULES.md),
so the two sets tell the cost of evaluating 1,000 tags apart from the cost of their changes.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import yaml

REPO = Path(__file__).resolve().parents[1]
REFERENCE_RULES = REPO / "benchmarks" / "reference_rules.yaml"
RULES_1000 = REPO / "benchmarks" / "rules_1000.yaml"
RULES_1000_SELECTIVE = REPO / "benchmarks" / "rules_1000_selective.yaml"
DEFAULT_TAGS = 1000
DEFAULT_SEED = 12

COUNT_LADDER = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
AMOUNT_LADDER = (25, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000)
DISTINCT_LADDER = (1, 2, 3, 4, 5, 6, 8, 10)
HOURS_LADDER = ("hours(1)", "hours(6)", "hours(12)", "days(1)", "days(2)", "days(3)", "days(7)", "days(14)",
                "days(21)", "days(30)", "days(45)", "days(60)", "days(90)", "days(180)", "days(365)")


def ladder(feature: dict[str, object]) -> tuple[object, ...]:
    """The thresholds a tag may compare ``feature`` with."""
    agg, name = feature["agg"], str(feature["name"])
    if agg == "since_last":
        return HOURS_LADDER
    if agg == "distinct_count":
        return DISTINCT_LADDER
    if agg in ("sum", "avg", "max", "min") and "items" not in name:
        return AMOUNT_LADDER
    return COUNT_LADDER


class TagMaker:
    """Draws tag conditions over the reference features, deterministically from ``seed``."""

    def __init__(self, features: list[dict[str, object]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.features = features
        self.numeric = [f for f in features if f["agg"] != "since_last"]
        self.since = [f for f in features if f["agg"] == "since_last"]
        self.kinds: list[tuple[int, Callable[[], dict[str, str]]]] = [
            (30, self.threshold), (12, self.band), (25, self.both), (8, self.either), (8, self.recency),
            (5, self.absent_after), (4, self.ratio), (5, self.hysteresis), (3, self.flap_controlled)]

    def pick(self, pool: list[dict[str, object]]) -> tuple[str, tuple[object, ...]]:
        f = self.rng.choice(pool)
        return str(f["name"]), ladder(f)

    def atom(self, ops: tuple[str, ...] = (">=", ">=", ">")) -> str:
        name, steps = self.pick(self.numeric)
        return f"{name} {self.rng.choice(ops)} {self.rng.choice(steps)}"

    def threshold(self) -> dict[str, str]:
        return {"when": self.atom()}

    def band(self) -> dict[str, str]:
        name, steps = self.pick(self.numeric)
        lo, hi = sorted(cast("list[float]", self.rng.sample(steps, 2)))  # numeric ladders only
        return {"when": f"{lo} <= {name} < {hi}"}

    def both(self) -> dict[str, str]:
        other = self.rng.choice((self.atom(), self.atom(("<",)), f"{self.pick(self.numeric)[0]} == 0"))
        return {"when": f"{self.atom()} and {other}"}

    def either(self) -> dict[str, str]:
        return {"when": f"{self.atom()} or {self.atom()}"}

    def recency(self) -> dict[str, str]:
        name, steps = self.pick(self.since)
        op = self.rng.choice(("<", ">="))
        return {"when": f"{name} {op} {self.rng.choice(steps)}"}

    def absent_after(self) -> dict[str, str]:
        name, steps = self.pick(self.since)
        return {"when": f"{self.atom()} and {name} >= {self.rng.choice(steps)}"}

    def ratio(self) -> dict[str, str]:
        a, _ = self.pick(self.numeric)
        b, _ = self.pick(self.numeric)
        return {"when": f"{b} >= 1 and {a} >= {b} / {self.rng.choice((2, 3, 4, 5))}"}

    def hysteresis(self) -> dict[str, str]:
        name, steps = self.pick(self.numeric)
        hi = self.rng.choice(steps[1:])
        lo = steps[max(0, steps.index(hi) - self.rng.choice((1, 2)))]
        return {"enter": f"{name} >= {hi}", "exit": f"{name} < {lo}"}

    def flap_controlled(self) -> dict[str, str]:
        spec = self.threshold()
        key = self.rng.choice(("min_duration", "cooldown"))
        spec[key] = self.rng.choice(("10m", "1h", "6h", "24h"))
        return spec

    def make(self) -> dict[str, str]:
        weights = [w for w, _ in self.kinds]
        return self.rng.choices([k for _, k in self.kinds], weights)[0]()


UPPER = 1 / 3
"""Selective tags: the share of a ladder (its top) that thresholds to reach are drawn from."""


def upper(steps: tuple[object, ...]) -> tuple[object, ...]:
    """The top ``UPPER`` of a ladder: counts 20…50, amounts 1,000…10,000, distinct values 6…10,
    recency ``days(45)``…``days(365)``."""
    return steps[len(steps) - max(1, round(len(steps) * UPPER)):]


def lower(steps: tuple[object, ...]) -> tuple[object, ...]:
    """The low end of a ladder (a count a customer stays under: ``refunds_30d < 2``)."""
    return steps[:max(1, len(steps) // 4)]


class SelectiveTagMaker(TagMaker):
    """Narrow segments of the same kinds: high thresholds, conjunctions (``--selective``)."""

    def __init__(self, features: list[dict[str, object]], seed: int) -> None:
        super().__init__(features, seed)
        self.kinds = [
            (25, self.threshold), (10, self.band), (30, self.both), (5, self.either), (8, self.recency),
            (5, self.absent_after), (4, self.ratio), (8, self.hysteresis), (5, self.flap_controlled)]

    def high(self) -> str:
        """A threshold to reach, from the top of the feature's ladder."""
        name, steps = self.pick(self.numeric)
        return f"{name} {self.rng.choice(('>=', '>=', '>'))} {self.rng.choice(upper(steps))}"

    def threshold(self) -> dict[str, str]:
        return {"when": self.high()}

    def band(self) -> dict[str, str]:
        name, steps = self.pick(self.numeric)
        lo, hi = sorted(cast("list[float]", self.rng.sample(upper(steps), 2)))
        return {"when": f"{lo} <= {name} < {hi}"}

    def both(self) -> dict[str, str]:
        name, steps = self.pick(self.numeric)
        other = self.rng.choice((self.high(), f"{name} < {self.rng.choice(lower(steps))}", f"{name} == 0"))
        return {"when": f"{self.high()} and {other}"}

    def either(self) -> dict[str, str]:
        return {"when": f"{self.high()} or {self.high()}"}

    def recency(self) -> dict[str, str]:
        name, steps = self.pick(self.since)
        return {"when": f"{name} < {self.rng.choice(steps)} and {self.high()}"}

    def absent_after(self) -> dict[str, str]:
        name, steps = self.pick(self.since)
        return {"when": f"{self.high()} and {name} >= {self.rng.choice(upper(steps))}"}

    def ratio(self) -> dict[str, str]:
        a, _ = self.pick(self.numeric)
        b, steps = self.pick(self.numeric)
        return {"when": f"{b} >= {self.rng.choice(upper(steps))} and {a} >= {b} / {self.rng.choice((2, 3, 4, 5))}"}

    def hysteresis(self) -> dict[str, str]:
        name, steps = self.pick(self.numeric)
        hi = self.rng.choice(upper(steps))
        lo = steps[max(0, steps.index(hi) - self.rng.choice((1, 2)))]
        return {"enter": f"{name} >= {hi}", "exit": f"{name} < {lo}"}


def generate(tags: int = DEFAULT_TAGS, seed: int = DEFAULT_SEED,
             reference: Path = REFERENCE_RULES, selective: bool = False) -> dict[str, object]:
    """The rule file as a mapping: the reference features and tags, then generated tags up to
    ``tags`` (distinct conditions, names ``seg_0051`` …); narrow ones with ``selective``."""
    ref = yaml.safe_load(reference.read_text())
    out_tags: list[dict[str, str]] = list(ref["tags"])[:tags]
    seen = {tuple(sorted((k, v) for k, v in t.items() if k != "name")) for t in out_tags}
    maker = (SelectiveTagMaker if selective else TagMaker)(ref["features"], seed)
    while len(out_tags) < tags:
        spec = maker.make()
        sig = tuple(sorted(spec.items()))
        if sig in seen:
            continue
        seen.add(sig)
        out_tags.append({"name": f"seg_{len(out_tags) + 1:04d}", **spec})
    if selective:
        return {"version": f"bench-rules-{tags}-selective-seed{seed}",
                "description": f"Benchmark scale workload: the reference features, {tags} tags, narrow segments "
                               f"(benchmarks/rules_1000.py --selective --tags {tags} --seed {seed}).",
                "features": ref["features"], "tags": out_tags}
    return {"version": f"bench-rules-{tags}-seed{seed}",
            "description": f"Benchmark scale workload: the reference features, {tags} tags "
                           f"(benchmarks/rules_1000.py --tags {tags} --seed {seed}).",
            "features": ref["features"], "tags": out_tags}


def render(rules: dict[str, object], selective: bool = False) -> str:
    if selective:
        head = ("# Generated by `python -m benchmarks.rules_1000 --selective` (benchmarks/rules_1000.py):\n"
                "# do not edit. The reference workload's features and tags (benchmarks/reference_rules.yaml) plus\n"
                "# generated narrow segment tags (high thresholds, conjunctions). Check with\n"
                "# `tagstream rules check benchmarks/rules_1000_selective.yaml`.\n")
    else:
        head = ("# Generated by `python -m benchmarks.rules_1000` (benchmarks/rules_1000.py): do not edit.\n"
                "# The reference workload's features and tags (benchmarks/reference_rules.yaml) plus generated\n"
                "# segment tags. Check with `tagstream rules check benchmarks/rules_1000.yaml`.\n")
    return head + yaml.safe_dump(rules, sort_keys=False, width=120, allow_unicode=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=DEFAULT_TAGS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--selective", action="store_true", help="narrow segments (high thresholds, conjunctions)")
    ap.add_argument("--out", type=Path,
                    help="default benchmarks/rules_1000.yaml (--selective: benchmarks/rules_1000_selective.yaml)")
    args = ap.parse_args(argv)
    out = args.out or (RULES_1000_SELECTIVE if args.selective else RULES_1000)
    out.write_text(render(generate(args.tags, args.seed, selective=args.selective), selective=args.selective))
    print(f"{out}: {args.tags} tags")
    return 0


if __name__ == "__main__":
    sys.exit(main())
