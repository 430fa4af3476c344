"""Identity resolution, pure (docs/identity.md): the identity graph (clusters of typed ids and their
canonical id) and the merge of two customers' state. No Kafka, Redis or clock.

Public API: ``IdentityGraph``, ``GraphLimits``, ``LinkResult``, ``Move``, ``Refusal``,
``REFUSAL_REASONS``, ``merge_customers``, ``MergeOutcome``.
"""

from streams.engine.identity.graph import REFUSAL_REASONS, GraphLimits, IdentityGraph, LinkResult, Move, Refusal
from streams.engine.identity.merge import MergeOutcome, merge_customers

__all__ = ["REFUSAL_REASONS", "GraphLimits", "IdentityGraph", "LinkResult", "MergeOutcome", "Move", "Refusal",
           "merge_customers"]
