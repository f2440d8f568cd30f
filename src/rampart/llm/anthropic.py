"""Anthropic Messages provider.

``POST {ANTHROPIC_BASE_URL}/v1/messages`` with headers ``x-api-key`` and
``anthropic-version: 2023-06-01``, the system prompt in ``system``, one user message and
``max_tokens``. The Messages API has no JSON mode: the prompt asks for one JSON object and
the answer is the first ``text`` content block, validated like any other.

Plain httpx (``AsyncClient``), no vendor SDK: one request per call, no hidden retries (our
retry policy and circuit breaker decide).
"""

from __future__ import annotations

from typing import Any

from rampart.llm.http import HTTPProvider, shape_error

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

ANTHROPIC_VERSION = "2023-06-01"
MAX_TOKENS = 4096


class AnthropicProvider(HTTPProvider):
    name = "anthropic"

    async def _complete(self, system: str, user: str) -> str | None:
        headers = {"content-type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if self._api_key:
            headers["x-api-key"] = self._api_key
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "system": system,
            "messages": [{"role": "user", "content": user}],
        }
        data = await self._post(f"{self.base_url}/v1/messages", headers, payload)
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise shape_error(self.name, "no content list")
        if data.get("stop_reason") == "max_tokens":
            raise shape_error(self.name, f"answer cut off at max_tokens={MAX_TOKENS}")
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise shape_error(self.name, "text block without text")
                return text
        raise shape_error(self.name, "no text content block")
