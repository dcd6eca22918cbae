"""Problems found in a ruleset, precise enough to fix without reading the loader."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule; ``tend rules check`` prints a list of these."""

    message: str
    rule_id: str | None = None
    field: str | None = None     # "conditions[1].expression", "params.sessions_today", ...
    origin: str | None = None    # file path or the origin given to from_documents
    line: int | None = None      # 1-based, in the YAML file
    column: int | None = None    # 1-based

    def __str__(self) -> str:
        """``FILE:LINE:COL: rule RULE_ID: field: message``, leaving out what is unknown."""
        where = self.origin or "<rules>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where]
        if self.rule_id:
            parts.append(f"rule {self.rule_id}")
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class RulesError(Exception):
    """A ruleset that must not run: raised at load, so a bad rule never reaches a therapist."""

    def __init__(self, problem: RuleProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem

    @property
    def rule_id(self) -> str | None:
        return self.problem.rule_id

    @property
    def field(self) -> str | None:
        return self.problem.field

    @property
    def position(self) -> tuple[int | None, int | None]:
        return (self.problem.line, self.problem.column)

    @property
    def message(self) -> str:
        return self.problem.message
