"""Resilience: the LLM chain still answers with its primary provider down."""

from __future__ import annotations

import asyncio
import time

from rampart.readiness.context import Context
from rampart.readiness.model import Result, Status

AREA = "resilience"
BASE_URL_SETTING = {"openai": "openai_base_url", "anthropic": "anthropic_base_url"}


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connections are refused)."""
    from rampart.devstack.ports import free_port

    return free_port()


def llm_fallback(ctx: Context) -> Result:
    """The configured chain, its primary pointed at a closed loopback port (one try, no
    retry, breakers kept out of Redis), scores a questionnaire: a later provider answers.
    Only the offline provider configured: warn (nothing to fall back from; every result is
    the offline scorer's)."""
    from rampart.llm import service
    from rampart.questionnaire import QUESTION_IDS

    check, doc = "LLM fallback proven", "docs/runbooks/llm-provider-outage.md"
    settings = ctx.settings
    chain = settings.provider_chain or ["offline"]
    primary = chain[0]
    source = f"LLM_PROVIDERS={','.join(chain)}"
    if primary == "offline":
        return Result(
            AREA,
            check,
            Status.WARN,
            "offline provider only: nothing to fall back from, every result degraded",
            source,
            "name a real provider first in LLM_PROVIDERS",
            doc,
        )
    port = _closed_port()
    down = f"http://127.0.0.1:{port}" + ("/v1" if primary == "openai" else "")
    probe = settings.model_copy(
        update={
            BASE_URL_SETTING[primary]: down,
            "llm_retry_attempts": 1,
            "llm_timeout_seconds": min(settings.llm_timeout_seconds, 10.0),
        }
    )
    providers = service.build_chain(probe, shared_breakers=False)
    answers = dict.fromkeys(sorted(QUESTION_IDS), 3)

    async def run():
        try:
            return await service.score(answers, None, chain=providers)
        finally:
            await service.aclose()

    started = time.perf_counter()
    try:
        generated = asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - any failure of the chain is the finding
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"the chain failed: {exc!r}",
            source,
            "the chain must end in `offline`; see the runbook",
            doc,
        )
    took = (time.perf_counter() - started) * 1000
    figure = (
        f"{primary} down (127.0.0.1:{port} refused) → answered by {generated.provider}"
        f" in {took:.0f} ms"
    )
    if generated.provider == primary:
        return Result(
            AREA,
            check,
            Status.NO_GO,
            f"{primary} answered from a closed port?",
            source,
            "report this: the probe did not take the primary down",
            doc,
        )
    real_after = [name for name in chain[1:] if name != "offline"]
    if real_after and generated.provider == "offline":
        return Result(
            AREA,
            check,
            Status.WARN,
            f"{figure}: {', '.join(real_after)} failed too",
            source,
            "check the secondary provider's key and URL",
            doc,
        )
    return Result(AREA, check, Status.GO, figure, source)
