"""Tend's rules: a pure ``(facts) -> [Decision]`` over rules kept as data (manifests/rules.yaml)."""

from .engine import DEFAULT_RULES_PATH, RuleSet
from .errors import RuleProblem, RulesError
from .facts import FACT_PATHS, default_facts
from .model import SAFETY_PREFIX, Decision, Rule, is_safety_rule

__all__ = [
    "DEFAULT_RULES_PATH", "Decision", "FACT_PATHS", "Rule", "RuleProblem", "RuleSet", "RulesError", "SAFETY_PREFIX",
    "default_facts", "is_safety_rule",
]
