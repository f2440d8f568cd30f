"""The LLM providers over real HTTP against the fake LLM server (both wire formats), through
the real chain: circuit breaker in the test Redis -> retry policy -> provider -> fallback,
all async (each test runs on its own event loop, as a worker process runs one).

Settings come from the environment, as in production; retries wait milliseconds here."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY
from tests.support.users import answers

from rampart.billing import plans
from rampart.config import get_settings
from rampart.llm import http, service
from rampart.llm.anthropic import ANTHROPIC_VERSION
from rampart.llm.fake_server import FakeLLMServer
from rampart.llm.offline import plan_roadmap, score_answers
from rampart.llm.prompts import read_input
from rampart.llm.service import GuardedProvider, provider_chain
from rampart.questionnaire import QUESTIONNAIRE

# `timing`: wall-clock bounds of concurrency; run alone after the parallel run (Makefile).
pytestmark = [pytest.mark.anyio, pytest.mark.timing]

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
ANSWERS = {
    **answers(3),
    "obs.structured_logs": 0,
    "sec.secrets_management": 1,
    "res.failure_testing": 5,
}
CONTEXT = "We are Jane Roe's clinic; patient notes live in the shared drive."


@pytest.fixture(scope="module")
def fake():
    with FakeLLMServer(api_key=None) as server:
        yield server


@pytest.fixture
async def llm(stack, fake, monkeypatch):
    """`await llm(**env)` configures the chain from env vars and returns it (breakers reset).
    The test's loop's HTTP connections are closed after it."""

    async def reset_breakers() -> None:
        for provider in provider_chain():
            if isinstance(provider, GuardedProvider):
                await provider.breaker.reset()

    async def configure(**env: str):
        settings = {
            "LLM_PROVIDERS": "openai,anthropic,offline",
            "OPENAI_BASE_URL": f"{fake.url}/v1",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_MODEL": "gpt-test",
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_MODEL": "claude-test",
            "LLM_TIMEOUT_SECONDS": "2",
            "LLM_RETRY_ATTEMPTS": "3",
            "LLM_RETRY_BASE_SECONDS": "0.01",
            "LLM_RETRY_MAX_SECONDS": "0.05",
            "LLM_BREAKER_FAILURE_THRESHOLD": "50",
            "LLM_BREAKER_COOLDOWN_SECONDS": "60",
            **env,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        provider_chain.cache_clear()
        await reset_breakers()
        return provider_chain()

    fake.reset()
    yield configure
    await reset_breakers()
    await service.aclose()
    monkeypatch.undo()
    get_settings.cache_clear()
    provider_chain.cache_clear()
    fake.reset()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- healthy providers ---------------------------------------------------------------------


async def test_openai_provider_answers_with_a_valid_score_and_roadmap(llm, fake):
    await llm(LLM_PROVIDERS="openai,offline")
    scored = await service.score(ANSWERS, CONTEXT)
    assert (scored.provider, scored.model, scored.degraded) == ("openai", "gpt-test", False)
    assert scored.result == score_answers(ANSWERS)

    planned = await service.roadmap(ANSWERS, scored.result, CONTEXT)
    assert (planned.provider, planned.degraded) == ("openai", False)
    assert planned.result == plan_roadmap(ANSWERS, scored.result)

    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request["json"]["model"] == "gpt-test"
    assert request["json"]["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in request["json"]["messages"]] == ["system", "user"]


async def test_anthropic_provider_answers_with_a_valid_score_and_roadmap(llm, fake):
    await llm(LLM_PROVIDERS="anthropic,offline")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.model, scored.degraded) == ("anthropic", "claude-test", False)
    assert scored.result == score_answers(ANSWERS)
    planned = await service.roadmap(ANSWERS, scored.result, None)
    assert planned.provider == "anthropic"
    assert planned.result == plan_roadmap(ANSWERS, scored.result)

    request = fake.requests[0]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert request["headers"]["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in request["headers"]
    assert request["json"]["max_tokens"] > 0
    assert request["json"]["system"]


async def test_a_tenant_uses_only_the_providers_its_plan_allows(llm, fake):
    """The free plan has no anthropic: its work goes to the next provider it may use, and
    that is not a fallback (nothing failed); the pro plan gets the chain's first."""
    await llm(LLM_PROVIDERS="anthropic,openai,offline")

    free = await service.score(ANSWERS, None, plans.get("free").allows_provider)
    free_roadmap = await service.roadmap(
        ANSWERS, free.result, None, plans.get("free").allows_provider
    )
    assert (free.provider, free.degraded) == ("openai", False)
    assert free_roadmap.provider == "openai"
    assert {r["path"] for r in fake.requests} == {"/v1/chat/completions"}

    fake.reset()
    pro = await service.score(ANSWERS, None, plans.get("pro").allows_provider)
    assert (pro.provider, pro.degraded) == ("anthropic", False)
    assert [r["path"] for r in fake.requests] == ["/v1/messages"]


async def test_the_prompt_carries_every_question_and_answer(llm, fake):
    await llm(LLM_PROVIDERS="openai,offline")
    await service.score(ANSWERS, CONTEXT)
    user = fake.requests[0]["json"]["messages"][1]["content"]
    document = read_input(user)
    assert document is not None
    assert {q["id"]: q["answer"] for q in document["questions"]} == ANSWERS
    assert {q["text"] for q in document["questions"]} == {q.text for q in QUESTIONNAIRE.questions}
    assert document["context"] == CONTEXT


async def test_the_context_and_keys_reach_the_provider_but_never_the_logs(
    llm, fake, capsys, caplog
):
    await llm(LLM_PROVIDERS="openai,anthropic,offline")
    fake.set_fault("status", status=401, target="openai")
    fake.set_fault("error", status=500, target="anthropic")
    result = await service.score(ANSWERS, CONTEXT)
    assert result.provider == "offline"
    sent = [read_input(r["json"]["messages"][-1]["content"]) for r in fake.requests]
    assert sent and all(doc["context"] == CONTEXT for doc in sent)  # it was sent...
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "llm_provider_failed" in logged
    for secret in (CONTEXT, "Jane Roe", OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in logged  # ...and never logged


# --- transient failures: retried, then the next provider -----------------------------------


async def test_a_500_is_retried_then_the_next_provider_answers_degraded(llm, fake):
    await llm()
    fake.set_fault("error", status=500, target="openai")
    retries = metric("rampart_llm_retries_total", provider="openai")

    scored = await service.score(ANSWERS, None)

    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert scored.result == score_answers(ANSWERS)
    assert fake.calls("openai") == 3  # LLM_RETRY_ATTEMPTS tries
    assert fake.calls("anthropic") == 1
    assert metric("rampart_llm_retries_total", provider="openai") - retries == 2


async def test_a_transient_failure_that_clears_is_not_degraded(llm, fake):
    await llm()
    fake.set_fault("error", status=503, times=2, target="openai")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 3
    assert fake.calls("anthropic") == 0


async def test_a_429_waits_the_retry_after_it_asks_for(llm, fake):
    await llm(LLM_RETRY_MAX_SECONDS="5")
    fake.set_fault("rate_limit", retry_after=1, times=1, target="openai")
    t0 = time.perf_counter()
    scored = await service.score(ANSWERS, None)
    elapsed = time.perf_counter() - t0
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 2
    assert elapsed >= 1.0  # the backoff alone would have waited ~0.01 s


async def test_a_429_retry_after_is_capped(llm, fake):
    await llm(LLM_RETRY_MAX_SECONDS="0.2")
    fake.set_fault("rate_limit", retry_after=30, times=1, target="openai")
    t0 = time.perf_counter()
    scored = await service.score(ANSWERS, None)
    assert scored.provider == "openai"
    assert time.perf_counter() - t0 < 5


async def test_a_hanging_provider_times_out_and_the_chain_moves_on(llm, fake):
    await llm(LLM_TIMEOUT_SECONDS="0.3", LLM_RETRY_ATTEMPTS="2", LLM_PROVIDERS="openai,offline")
    fake.set_fault("hang", hang=5, target="openai")
    timeouts = metric("rampart_llm_requests_total", provider="openai", outcome="timeout")
    t0 = time.perf_counter()
    scored = await service.score(ANSWERS, None)
    elapsed = time.perf_counter() - t0
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert fake.calls("openai") == 2  # a timeout is transient: retried
    assert 0.6 <= elapsed < 2.0  # two tries of 0.3 s, not the 5 s hang
    assert (
        metric("rampart_llm_requests_total", provider="openai", outcome="timeout") - timeouts == 2
    )


async def test_a_provider_trickling_its_answer_past_the_deadline_times_out(llm, fake):
    # Each piece arrives well within the timeout (a per-read timeout never fires); the
    # whole answer would take 20 x 0.1 s = 2 s: the deadline covers the whole exchange.
    await llm(LLM_TIMEOUT_SECONDS="0.5", LLM_RETRY_ATTEMPTS="1", LLM_PROVIDERS="openai,offline")
    fake.set_fault("drip", latency=0.1, target="openai")
    t0 = time.perf_counter()
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert time.perf_counter() - t0 < 1.5


async def test_a_slow_but_timely_provider_answers(llm, fake):
    await llm(LLM_TIMEOUT_SECONDS="2", LLM_PROVIDERS="openai,offline")
    fake.set_fault("latency", latency=0.3, target="openai")
    assert (await service.score(ANSWERS, None)).provider == "openai"
    fake.set_fault("drip", latency=0.01, target="openai")  # trickled, but complete in time
    assert (await service.score(ANSWERS, None)).provider == "openai"


async def test_connection_refused_is_transient(llm, fake):
    from rampart.devstack.ports import free_port

    await llm(OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)


# --- definitive failures: no retry, next provider at once ---------------------------------


async def test_a_bad_base_url_is_definitive(llm, fake):
    await llm(OPENAI_BASE_URL="ftp://127.0.0.1/v1")
    errors = metric("rampart_llm_requests_total", provider="openai", outcome="error")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert metric("rampart_llm_requests_total", provider="openai", outcome="error") - errors == 1


async def test_a_bug_inside_a_provider_still_falls_back():
    from rampart.kit.resilience import CircuitBreaker, RetryPolicy
    from rampart.llm.base import DefinitiveLLMError, TransientLLMError

    class Broken:
        name, model = "broken", "m"

        async def score(self, answers, context):
            raise KeyError("choices")

    guarded = GuardedProvider(
        Broken(), CircuitBreaker("test-broken", None), RetryPolicy(transient=(TransientLLMError,))
    )
    with pytest.raises(DefinitiveLLMError, match="unexpected KeyError"):
        await guarded.score(ANSWERS, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_a_client_error_is_not_retried(llm, fake, status):
    await llm()
    fake.set_fault("status", status=status, target="openai")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert fake.calls("openai") == 1


@pytest.mark.parametrize("mode", ["malformed_json", "wrong_schema"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_bad_model_output_is_definitive(llm, fake, mode, provider):
    await llm(LLM_PROVIDERS=f"{provider},offline")
    fake.set_fault(mode, target=provider)
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert fake.calls(provider) == 1


# --- circuit breaker ------------------------------------------------------------------------


async def test_breaker_opens_and_the_provider_gets_no_calls_until_the_cool_down(llm, fake):
    await llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="3",
        LLM_BREAKER_COOLDOWN_SECONDS="1",
    )
    fake.set_fault("error", status=500, target="openai")
    fast_fails = metric("rampart_llm_requests_total", provider="openai", outcome="circuit_open")

    for _ in range(3):
        assert (await service.score(ANSWERS, None)).provider == "offline"
    assert fake.calls("openai") == 3
    assert metric("rampart_circuit_breaker_state", provider="openai") == 2

    t0 = time.perf_counter()
    for _ in range(10):
        scored = await service.score(ANSWERS, None)
        assert (scored.provider, scored.degraded) == ("offline", True)
    assert fake.calls("openai") == 3  # open: no network at all
    assert time.perf_counter() - t0 < 1.0
    assert (
        metric("rampart_llm_requests_total", provider="openai", outcome="circuit_open")
        - (fast_fails)
        == 10
    )

    # After the cool-down one trial goes through; the provider has recovered: closed again.
    fake.set_fault("ok")
    await asyncio.sleep(1.1)
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 4
    assert metric("rampart_circuit_breaker_state", provider="openai") == 0
    assert (await service.score(ANSWERS, None)).provider == "openai"


async def test_a_failed_trial_reopens_the_breaker(llm, fake):
    await llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="2",
        LLM_BREAKER_COOLDOWN_SECONDS="0.5",
    )
    fake.set_fault("error", status=500, target="openai")
    for _ in range(2):
        await service.score(ANSWERS, None)
    await asyncio.sleep(0.6)
    assert (await service.score(ANSWERS, None)).provider == "offline"  # the trial, failed
    assert fake.calls("openai") == 3
    for _ in range(5):
        await service.score(ANSWERS, None)
    assert fake.calls("openai") == 3  # open again for a new cool-down


async def test_the_breaker_state_is_shared_with_other_processes(llm, fake):
    """A second chain (as built by another process) sees the breaker the first one opened."""
    await llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="2",
    )
    fake.set_fault("error", status=500, target="openai")
    await service.score(ANSWERS, None)
    await service.score(ANSWERS, None)
    provider_chain.cache_clear()  # a fresh chain: new clients, same Redis
    await service.score(ANSWERS, None)
    assert fake.calls("openai") == 2


# --- the chain ------------------------------------------------------------------------------


async def test_with_every_real_provider_failing_the_offline_provider_answers_degraded(llm, fake):
    await llm(LLM_PROVIDERS="openai,anthropic,offline")
    fake.set_fault("error", status=502)  # both
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.model, scored.degraded) == ("offline", "rules-v1", True)
    assert scored.result == score_answers(ANSWERS)
    planned = await service.roadmap(ANSWERS, scored.result, None)
    assert (planned.provider, planned.degraded) == ("offline", True)
    assert fake.calls("openai") == 6 and fake.calls("anthropic") == 6


async def test_a_healthy_first_provider_is_not_degraded(llm, fake):
    await llm(LLM_PROVIDERS="openai,anthropic,offline")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("anthropic") == 0


async def test_the_chain_always_ends_in_offline(llm):
    chain = await llm(LLM_PROVIDERS="anthropic")
    assert [p.name for p in chain] == ["anthropic", "offline"]


async def test_offline_alone_needs_no_redis_and_is_not_degraded(llm, fake):
    chain = await llm(LLM_PROVIDERS="offline")
    assert [p.name for p in chain] == ["offline"]
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", False)
    assert fake.calls() == 0


async def test_a_reset_of_the_fake_cuts_off_the_calls_still_hanging_and_counts_from_zero(
    llm, fake
):
    """What one test left hanging at the fake LLM (a hang lasts its `hang` seconds after the
    client gave up) is not in the next test's counts: the fixture resets the fake."""
    await llm(LLM_TIMEOUT_SECONDS="0.3", LLM_RETRY_ATTEMPTS="1", LLM_PROVIDERS="openai,offline")
    fake.set_fault("hang", hang=30, target="openai")
    scored = await service.score(ANSWERS, None)
    assert (scored.provider, fake.stats()["in_flight"]) == ("offline", 1)
    fake.reset()
    assert (fake.stats()["in_flight"], fake.max_in_flight(), fake.calls()) == (0, 0, 0)


# --- concurrency: one event loop, many calls in flight ---------------------------------------


async def test_one_event_loop_holds_100_calls_in_flight_at_once(llm, fake):
    """100 concurrent calls against a model taking 2 s each: all 100 are at the server at
    the same time (one after the other they would take 200 s)."""
    await llm(LLM_PROVIDERS="openai,offline", LLM_TIMEOUT_SECONDS="30")
    fake.set_fault("latency", latency=2.0, target="openai")

    t0 = time.perf_counter()
    results = await asyncio.gather(*(service.score(ANSWERS, None) for _ in range(100)))
    elapsed = time.perf_counter() - t0

    assert {(r.provider, r.degraded) for r in results} == {("openai", False)}
    assert all(r.result == score_answers(ANSWERS) for r in results)
    assert fake.calls("openai") == 100  # no timeouts, no retries
    assert fake.max_in_flight() == 100
    assert elapsed < 20


async def test_calls_from_several_event_loops_each_use_their_own_clients(llm, fake):
    """The chain is shared; its HTTP and Redis clients are not. A call on another loop (a
    thread serving another app, say) after this loop left an idle keep-alive connection,
    then one on each loop at once: each loop uses its own connections (a connection used
    from a foreign loop fails, and the chain would fall back to offline)."""
    await llm(LLM_PROVIDERS="openai,offline")

    async def on_another_loop() -> tuple[str, bool, int]:
        try:
            result = await service.score(ANSWERS, None)
            return result.provider, result.degraded, id(_loop_client())
        finally:
            await service.aclose()

    def elsewhere():
        return asyncio.to_thread(asyncio.run, on_another_loop())

    first = await service.score(ANSWERS, None)  # leaves an idle connection in this loop's pool
    after = await elsewhere()
    fake.set_fault("latency", latency=0.5, target="openai")
    here, alongside = await asyncio.gather(service.score(ANSWERS, None), elsewhere())

    assert [(r.provider, r.degraded) for r in (first, here)] == [("openai", False)] * 2
    assert [r[:2] for r in (after, alongside)] == [("openai", False)] * 2
    assert id(_loop_client()) not in (after[2], alongside[2])
    assert fake.max_in_flight() == 2


def _loop_client():
    return http.shared_client(get_settings().llm_max_connections)
