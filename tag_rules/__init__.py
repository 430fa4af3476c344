"""Declarative tag rules: YAML rule files and their compiler. No Kafka, Redis or Faust here.

Public API: ``load_rules(path) -> CompiledRuleSet``, ``CompiledRuleSet``, ``FeatureDef``,
``Pattern`` and ``EventMatch`` (sequence/absence features), ``TagDef``, ``RuleSetError``,
``RuleError``, ``compile_expr``, ``ExprError``, ``DEFAULT_RULES``.
"""

from pathlib import Path

from .compiler import CompiledRuleSet, FeatureDef, TagDef, load_rules
from .errors import RuleError, RuleSetError
from .expr import CompiledExpr, ExprError, compile_expr
from .sequences import EventMatch, Pattern

DEFAULT_RULES = Path(__file__).with_name("retail.yaml")
"""The example retail rule set shipped with tagstream."""

__all__ = [
    "DEFAULT_RULES",
    "CompiledExpr",
    "CompiledRuleSet",
    "EventMatch",
    "ExprError",
    "FeatureDef",
    "Pattern",
    "RuleError",
    "RuleSetError",
    "TagDef",
    "compile_expr",
    "load_rules",
]
