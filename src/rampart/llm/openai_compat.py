"""OpenAI-compatible chat-completions provider (OpenAI, Ollama, vLLM, OpenRouter, ...).

``POST {OPENAI_BASE_URL}/chat/completions`` with ``Authorization: Bearer <key>`` (omitted
when no key is set, e.g. a local Ollama), a system and a user message, and
``response_format: {"type": "json_object"}`` so the model answers with one JSON object.
The answer is ``choices[0].message.content``.

Plain httpx (``AsyncClient``), no vendor SDK: one request per call, no hidden retries (our
retry policy and circuit breaker decide), and any OpenAI-compatible server works the same
way. No ``temperature`` or ``max_tokens``: several current models reject them.
"""

from __future__ import annotations

from typing import Any

from rampart.llm.http import HTTPProvider, shape_error

__all__ = ["OpenAICompatProvider"]


class OpenAICompatProvider(HTTPProvider):
    name = "openai"

    async def _complete(self, system: str, user: str) -> str | None:
        headers = {"content-type": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "response_format": {"type": "json_object"},
        }
        data = await self._post(f"{self.base_url}/chat/completions", headers, payload)
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise shape_error(self.name, "no choices[0].message") from None
        if not isinstance(message, dict):
            raise shape_error(self.name, "choices[0].message is not an object")
        if message.get("refusal"):
            raise shape_error(self.name, "the model refused")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise shape_error(self.name, "choices[0].message.content is not text")
        return content
