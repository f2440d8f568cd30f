"""The LLM providers over real HTTP against the fake LLM server (both wire formats), through
the real chain: circuit breaker in the test Redis -> retry policy -> provider -> fallback.

Settings come from the environment, as in production; retries wait milliseconds here."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY
from tests.support.users import answers

from rampart.assessments.questionnaire import QUESTIONNAIRE
from rampart.config import get_settings
from rampart.llm import service
from rampart.llm.anthropic import ANTHROPIC_VERSION
from rampart.llm.fake_server import FakeLLMServer
from rampart.llm.offline import OfflineProvider
from rampart.llm.prompts import read_input
from rampart.llm.service import GuardedProvider, provider_chain

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
ANSWERS = {
    **answers(3),
    "obs.structured_logs": 0,
    "sec.secrets_management": 1,
    "res.failure_testing": 5,
}
CONTEXT = "We are Jane Roe's clinic; patient notes live in the shared drive."
OFFLINE = OfflineProvider()


@pytest.fixture(scope="module")
def fake():
    with FakeLLMServer(api_key=None) as server:
        yield server


@pytest.fixture
def llm(stack, fake, monkeypatch):
    """`llm(**env)` configures the chain from env vars and returns it (breakers reset)."""

    def reset_breakers() -> None:
        for provider in provider_chain():
            if isinstance(provider, GuardedProvider):
                provider.breaker.reset()

    def configure(**env: str):
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
        reset_breakers()
        return provider_chain()

    fake.reset()
    yield configure
    reset_breakers()
    monkeypatch.undo()
    get_settings.cache_clear()
    provider_chain.cache_clear()
    fake.reset()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- healthy providers ---------------------------------------------------------------------


def test_openai_provider_answers_with_a_valid_score_and_roadmap(llm, fake):
    llm(LLM_PROVIDERS="openai,offline")
    scored = service.score(ANSWERS, CONTEXT)
    assert (scored.provider, scored.model, scored.degraded) == ("openai", "gpt-test", False)
    assert scored.result == OFFLINE.score(ANSWERS)

    planned = service.roadmap(ANSWERS, scored.result, CONTEXT)
    assert (planned.provider, planned.degraded) == ("openai", False)
    assert planned.result == OFFLINE.roadmap(ANSWERS, scored.result)

    request = fake.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request["json"]["model"] == "gpt-test"
    assert request["json"]["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in request["json"]["messages"]] == ["system", "user"]


def test_anthropic_provider_answers_with_a_valid_score_and_roadmap(llm, fake):
    llm(LLM_PROVIDERS="anthropic,offline")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.model, scored.degraded) == ("anthropic", "claude-test", False)
    assert scored.result == OFFLINE.score(ANSWERS)
    planned = service.roadmap(ANSWERS, scored.result, None)
    assert planned.provider == "anthropic"
    assert planned.result == OFFLINE.roadmap(ANSWERS, scored.result)

    request = fake.requests[0]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert request["headers"]["anthropic-version"] == ANTHROPIC_VERSION
    assert "authorization" not in request["headers"]
    assert request["json"]["max_tokens"] > 0
    assert request["json"]["system"]


def test_the_prompt_carries_every_question_and_answer(llm, fake):
    llm(LLM_PROVIDERS="openai,offline")
    service.score(ANSWERS, CONTEXT)
    user = fake.requests[0]["json"]["messages"][1]["content"]
    document = read_input(user)
    assert document is not None
    assert {q["id"]: q["answer"] for q in document["questions"]} == ANSWERS
    assert {q["text"] for q in document["questions"]} == {q.text for q in QUESTIONNAIRE.questions}
    assert document["context"] == CONTEXT


def test_the_context_and_keys_reach_the_provider_but_never_the_logs(llm, fake, capsys, caplog):
    llm(LLM_PROVIDERS="openai,anthropic,offline")
    fake.set_fault("status", status=401, target="openai")
    fake.set_fault("error", status=500, target="anthropic")
    result = service.score(ANSWERS, CONTEXT)
    assert result.provider == "offline"
    sent = [read_input(r["json"]["messages"][-1]["content"]) for r in fake.requests]
    assert sent and all(doc["context"] == CONTEXT for doc in sent)  # it was sent...
    captured = capsys.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "llm_provider_failed" in logged
    for secret in (CONTEXT, "Jane Roe", OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in logged  # ...and never logged


# --- transient failures: retried, then the next provider -----------------------------------


def test_a_500_is_retried_then_the_next_provider_answers_degraded(llm, fake):
    llm()
    fake.set_fault("error", status=500, target="openai")
    retries = metric("rampart_llm_retries_total", provider="openai")

    scored = service.score(ANSWERS, None)

    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert scored.result == OFFLINE.score(ANSWERS)
    assert fake.calls("openai") == 3  # LLM_RETRY_ATTEMPTS tries
    assert fake.calls("anthropic") == 1
    assert metric("rampart_llm_retries_total", provider="openai") - retries == 2


def test_a_transient_failure_that_clears_is_not_degraded(llm, fake):
    llm()
    fake.set_fault("error", status=503, times=2, target="openai")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 3
    assert fake.calls("anthropic") == 0


def test_a_429_waits_the_retry_after_it_asks_for(llm, fake):
    llm(LLM_RETRY_MAX_SECONDS="5")
    fake.set_fault("rate_limit", retry_after=1, times=1, target="openai")
    t0 = time.perf_counter()
    scored = service.score(ANSWERS, None)
    elapsed = time.perf_counter() - t0
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 2
    assert elapsed >= 1.0  # the backoff alone would have waited ~0.01 s


def test_a_429_retry_after_is_capped(llm, fake):
    llm(LLM_RETRY_MAX_SECONDS="0.2")
    fake.set_fault("rate_limit", retry_after=30, times=1, target="openai")
    t0 = time.perf_counter()
    scored = service.score(ANSWERS, None)
    assert scored.provider == "openai"
    assert time.perf_counter() - t0 < 5


def test_a_hanging_provider_times_out_and_the_chain_moves_on(llm, fake):
    llm(LLM_TIMEOUT_SECONDS="0.3", LLM_RETRY_ATTEMPTS="2", LLM_PROVIDERS="openai,offline")
    fake.set_fault("hang", hang=5, target="openai")
    timeouts = metric("rampart_llm_requests_total", provider="openai", outcome="timeout")
    t0 = time.perf_counter()
    scored = service.score(ANSWERS, None)
    elapsed = time.perf_counter() - t0
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert fake.calls("openai") == 2  # a timeout is transient: retried
    assert 0.6 <= elapsed < 2.0  # two tries of 0.3 s, not the 5 s hang
    assert (
        metric("rampart_llm_requests_total", provider="openai", outcome="timeout") - timeouts == 2
    )


def test_a_provider_trickling_its_answer_past_the_deadline_times_out(llm, fake):
    # Each piece arrives well within the timeout (a per-read timeout never fires); the
    # whole answer would take 20 x 0.1 s = 2 s: the deadline covers the whole exchange.
    llm(LLM_TIMEOUT_SECONDS="0.5", LLM_RETRY_ATTEMPTS="1", LLM_PROVIDERS="openai,offline")
    fake.set_fault("drip", latency=0.1, target="openai")
    t0 = time.perf_counter()
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert time.perf_counter() - t0 < 1.5


def test_a_slow_but_timely_provider_answers(llm, fake):
    llm(LLM_TIMEOUT_SECONDS="2", LLM_PROVIDERS="openai,offline")
    fake.set_fault("latency", latency=0.3, target="openai")
    assert service.score(ANSWERS, None).provider == "openai"
    fake.set_fault("drip", latency=0.01, target="openai")  # trickled, but complete in time
    assert service.score(ANSWERS, None).provider == "openai"


def test_connection_refused_is_transient(llm, fake):
    from rampart.devstack.ports import free_port

    llm(OPENAI_BASE_URL=f"http://127.0.0.1:{free_port()}/v1")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)


# --- definitive failures: no retry, next provider at once ---------------------------------


def test_a_bad_base_url_is_definitive(llm, fake):
    llm(OPENAI_BASE_URL="ftp://127.0.0.1/v1")
    errors = metric("rampart_llm_requests_total", provider="openai", outcome="error")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert metric("rampart_llm_requests_total", provider="openai", outcome="error") - errors == 1


def test_a_bug_inside_a_provider_still_falls_back():
    from rampart.kit.resilience import CircuitBreaker, RetryPolicy
    from rampart.llm.base import DefinitiveLLMError, TransientLLMError

    class Broken:
        name, model = "broken", "m"

        def score(self, answers, context):
            raise KeyError("choices")

    guarded = GuardedProvider(
        Broken(), CircuitBreaker("test-broken", None), RetryPolicy(transient=(TransientLLMError,))
    )
    with pytest.raises(DefinitiveLLMError, match="unexpected KeyError"):
        guarded.score(ANSWERS, None)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_a_client_error_is_not_retried(llm, fake, status):
    llm()
    fake.set_fault("status", status=status, target="openai")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("anthropic", True)
    assert fake.calls("openai") == 1


@pytest.mark.parametrize("mode", ["malformed_json", "wrong_schema"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_bad_model_output_is_definitive(llm, fake, mode, provider):
    llm(LLM_PROVIDERS=f"{provider},offline")
    fake.set_fault(mode, target=provider)
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", True)
    assert fake.calls(provider) == 1


# --- circuit breaker ------------------------------------------------------------------------


def test_breaker_opens_and_the_provider_gets_no_calls_until_the_cool_down(llm, fake):
    llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="3",
        LLM_BREAKER_COOLDOWN_SECONDS="1",
    )
    fake.set_fault("error", status=500, target="openai")
    fast_fails = metric("rampart_llm_requests_total", provider="openai", outcome="circuit_open")

    for _ in range(3):
        assert service.score(ANSWERS, None).provider == "offline"
    assert fake.calls("openai") == 3
    assert metric("rampart_circuit_breaker_state", provider="openai") == 2

    t0 = time.perf_counter()
    for _ in range(10):
        scored = service.score(ANSWERS, None)
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
    time.sleep(1.1)
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("openai") == 4
    assert metric("rampart_circuit_breaker_state", provider="openai") == 0
    assert service.score(ANSWERS, None).provider == "openai"


def test_a_failed_trial_reopens_the_breaker(llm, fake):
    llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="2",
        LLM_BREAKER_COOLDOWN_SECONDS="0.5",
    )
    fake.set_fault("error", status=500, target="openai")
    for _ in range(2):
        service.score(ANSWERS, None)
    time.sleep(0.6)
    assert service.score(ANSWERS, None).provider == "offline"  # the trial, failed
    assert fake.calls("openai") == 3
    for _ in range(5):
        service.score(ANSWERS, None)
    assert fake.calls("openai") == 3  # open again for a new cool-down


def test_the_breaker_state_is_shared_with_other_processes(llm, fake):
    """A second chain (as built by another process) sees the breaker the first one opened."""
    llm(
        LLM_PROVIDERS="openai,offline",
        LLM_RETRY_ATTEMPTS="1",
        LLM_BREAKER_FAILURE_THRESHOLD="2",
    )
    fake.set_fault("error", status=500, target="openai")
    service.score(ANSWERS, None)
    service.score(ANSWERS, None)
    provider_chain.cache_clear()  # a fresh chain: new clients, same Redis
    service.score(ANSWERS, None)
    assert fake.calls("openai") == 2


# --- the chain ------------------------------------------------------------------------------


def test_with_every_real_provider_failing_the_offline_provider_answers_degraded(llm, fake):
    llm(LLM_PROVIDERS="openai,anthropic,offline")
    fake.set_fault("error", status=502)  # both
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.model, scored.degraded) == ("offline", "rules-v1", True)
    assert scored.result == OFFLINE.score(ANSWERS)
    planned = service.roadmap(ANSWERS, scored.result, None)
    assert (planned.provider, planned.degraded) == ("offline", True)
    assert fake.calls("openai") == 6 and fake.calls("anthropic") == 6


def test_a_healthy_first_provider_is_not_degraded(llm, fake):
    llm(LLM_PROVIDERS="openai,anthropic,offline")
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("openai", False)
    assert fake.calls("anthropic") == 0


def test_the_chain_always_ends_in_offline(llm):
    chain = llm(LLM_PROVIDERS="anthropic")
    assert [p.name for p in chain] == ["anthropic", "offline"]


def test_offline_alone_needs_no_redis_and_is_not_degraded(llm, fake):
    chain = llm(LLM_PROVIDERS="offline")
    assert [p.name for p in chain] == ["offline"]
    scored = service.score(ANSWERS, None)
    assert (scored.provider, scored.degraded) == ("offline", False)
    assert fake.calls() == 0
