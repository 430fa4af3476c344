"""The tags one event may flip, by which way (``Flips``): what the tag index (tag_index.py) hands
the tag engine. A comparison that flipped puts its tag where ``destination`` says: ``always``
(evaluated whatever the tag's held state), ``down`` (only if held: it moved toward false), ``up``
(only if not held), ``up_guarded`` (only if not held and its guards hold: the engine checks them).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any, Final

ALWAYS: Final = 0
DOWN: Final = 1
UP_GUARDED: Final = 2
UP: Final = 3
"""Where a flipped comparison puts its tag (``Flips.put``): ``always``, ``down``, ``up_guarded``, ``up``.
``Final``: compiled as constants (module globals are dictionary look-ups at every use)."""


class Flips:
    """The tags one event's feature changes may flip: ``always`` whichever way, ``up`` (only)
    when they are not held, ``down`` (only) when they are."""

    __slots__ = ("always", "down", "down_lists", "guarded", "up", "up_guarded", "up_guarded_lists", "with_guards")

    def __init__(self, always: Iterable[int] = (), with_guards: Container[int] = frozenset()) -> None:
        self.with_guards = with_guards
        """Plain tags with guards: a comparison moving one toward true puts it in ``up_guarded``."""
        self.always: set[int] = set(always)
        self.up: set[int] = set()
        self.down: set[int] = set()
        self.down_lists: list[list[int]] = []
        """More of ``down``, as the index's own lists (a linear comparison's moves, ``flip_moves.LinearMoves.down``),
        not copied into ``down``: only the held ones among them are evaluated."""
        self.guarded: set[int] = set()
        """Tags with guards (``CompiledExpr.guards``) a changed value reads: held ones are evaluated,
        the others only when their guards hold (the engine checks them)."""
        self.up_guarded: set[int] = set()
        """Tags with guards moved toward true: only the ones not held, and only when their guards
        hold (the engine checks them)."""
        self.up_guarded_lists: list[list[int]] = []
        """More of ``up_guarded``, as the index's own lists (``flip_moves.FlipDelta``), not copied: a tag in
        two of them is checked twice (rare: two features it reads moved at once)."""

    def __bool__(self) -> bool:
        return bool(self.always or self.up or self.down or self.down_lists or self.guarded or self.up_guarded
                    or self.up_guarded_lists)

    def every(self) -> set[int]:
        """Every tag crossed, whichever way (what a tag's evaluation without its held state needs)."""
        return self.always | self.up | self.guarded | self.downs() | self.ups_guarded()

    def downs(self) -> set[int]:
        """``down`` with ``down_lists``."""
        return self.down | {i for down in self.down_lists for i in down}

    def ups_guarded(self) -> set[int]:
        """``up_guarded`` with ``up_guarded_lists``."""
        return self.up_guarded | {i for listed in self.up_guarded_lists for i in listed}

    def chosen(self, names: list[str], held: dict[str, int]) -> set[int]:
        """The tags to evaluate, given the names of the tags by index and the ones held (the
        guarded and up_guarded ones that are not held are left to the caller)."""
        out = set(self.always)
        # Walked as objects (``Any``): compiled, a loop over a ``set[int]`` unboxes each tag and boxes
        # it again for ``out.add``, a new int object for every tag index above 256.
        up: Any = self.up
        down: Any = self.down
        guarded: Any = self.guarded
        lists: Any = self.down_lists
        # ``names[j]`` with ``j: int`` indexes the list directly (with ``i``, an object: a generic look-up).
        j: int
        for i in up:
            j = i
            if names[j] not in held:
                out.add(i)
        for i in down:
            j = i
            if names[j] in held:
                out.add(i)
        for listed in lists:
            for i in listed:
                j = i
                if names[j] in held:
                    out.add(i)
        for i in guarded:
            j = i
            if names[j] in held:
                out.add(i)
        return out

    def add(self, tag: int, sign: int, now_true: bool) -> None:
        """Tag ``tag``'s comparison of sign ``sign`` flipped to ``now_true``."""
        self.put(tag, destination(tag, sign, now_true, self.with_guards))

    def put(self, tag: int, where: int) -> None:
        """Puts tag ``tag`` where ``destination`` said."""
        if where == UP:
            self.up.add(tag)
        elif where == DOWN:
            self.down.add(tag)
        elif where == UP_GUARDED:
            self.up_guarded.add(tag)
        else:
            self.always.add(tag)


def destination(tag: int, sign: int, now_true: bool, with_guards: Container[int]) -> int:
    """Where tag ``tag``'s comparison of sign ``sign`` (``_Entry``) flipping to ``now_true`` puts it."""
    if not sign:
        return ALWAYS
    if now_true != (sign > 0):
        return DOWN
    return UP_GUARDED if tag in with_guards else UP
