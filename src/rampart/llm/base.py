"""The provider seam: what every LLM provider implements, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rampart.llm.schemas import RoadmapResult, ScoreResult

__all__ = ["DefinitiveLLMError", "LLMError", "LLMProvider", "TransientLLMError"]


class LLMError(Exception):
    """A provider could not produce a valid result. Use a subclass to say whether to retry."""


class TransientLLMError(LLMError):
    """Temporary failure worth retrying: timeout, connection error, HTTP 429 or 5xx."""


class DefinitiveLLMError(LLMError):
    """Failure that retrying will not fix: HTTP 4xx (other than 429) or output that does not
    validate against the schemas. Not retried; the caller may fall back to another provider."""


@runtime_checkable
class LLMProvider(Protocol):
    """Scores an assessment and writes a roadmap, as coroutines: a provider waiting for its
    model must not block the event loop (one loop runs every in-flight call of a process).

    ``answers`` maps question ids to scale values and has already passed
    ``validate_answers``. ``context`` is optional free text from the tenant; it may contain
    personal data, so providers must not log it. Implementations return validated
    schema objects and raise only ``LLMError`` subclasses on failure.
    """

    name: str
    model: str

    async def score(self, answers: dict[str, int], context: str | None) -> ScoreResult:
        """Score the answers overall and per dimension."""
        ...

    async def roadmap(
        self, answers: dict[str, int], score: ScoreResult, context: str | None
    ) -> RoadmapResult:
        """Write a prioritized roadmap for the answers, given their score."""
        ...
