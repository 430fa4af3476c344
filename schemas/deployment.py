"""A record of the rules topic ``<app id>-rules``: one deployed rule set (``tagstream rules deploy``).

The worker reads these with ``streams/io/rules_topic.py``; this model is the contract (JSON Schema
``rules_deployment.schema.json``, AsyncAPI channel ``rules``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RULES_RECORD_FORMAT = 1

RuleFileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml$", max_length=200)]


class RulesDeployment(BaseModel):
    """Key = the version (UTF-8); value = this object. The record with the highest offset is the
    rule set in force."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: Literal[1] = Field(description="Record format; a worker refuses formats it does not know.")
    version: Annotated[str, StringConstraints(min_length=1, max_length=256)] = Field(
        description="The rule set's `version` (the files' own `version:`).")
    files: dict[RuleFileName, str] = Field(min_length=1, description="Rule file name -> its YAML text.")
    deployed_at_ms: int = Field(ge=0, description="When it was deployed (epoch milliseconds).")
    deployed_by: str = Field("", max_length=256, description="Who deployed it (free text).")
