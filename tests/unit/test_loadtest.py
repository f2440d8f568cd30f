"""The pure parts of `make load` / `make soak` (bench/loadtest): SLO judgement, the report
contract `rampart readiness` reads, the /proc parsers, the alert rule as the rule file
declares it, and the duplicates the webhook scenario sends on purpose."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.loadtest import alert, report, rss, slo, workload
from bench.loadtest.report import Scenario

pytestmark = pytest.mark.unit

STATUS = """Name:\tpostgres
State:\tS (sleeping)
PPid:\t812
VmPeak:\t  221300 kB
VmRSS:\t   40960 kB
RssAnon:\t    8192 kB
RssFile:\t    4096 kB
RssShmem:\t   28672 kB
Threads:\t1
"""


def scenario(**overrides) -> Scenario:
    values = dict(name="webhooks@100/s", target_rps=100, duration_s=120.0, achieved_rps=99.5,
                  requests=12000, errors=0, p50_ms=4.0, p95_ms=12.0, p99_ms=40.0,
                  slo=slo.WEBHOOKS, passed=True, notes="ok")
    return Scenario(**{**values, **overrides})


# --- SLOs ----------------------------------------------------------------------------------


def test_an_slo_is_met_only_within_both_its_latency_and_its_error_budget():
    assert slo.meets(slo.WEBHOOKS, requests=1000, errors=5, p99_ms=100.0)
    assert not slo.meets(slo.WEBHOOKS, requests=1000, errors=6, p99_ms=50.0)
    assert not slo.meets(slo.WEBHOOKS, requests=1000, errors=0, p99_ms=100.1)
    assert not slo.meets(slo.SOAK, requests=1000, errors=1, p99_ms=10.0)


def test_no_request_or_no_answer_is_never_a_pass():
    assert not slo.meets(slo.MIXED, requests=0, errors=0, p99_ms=1.0)
    assert not slo.meets(slo.MIXED, requests=10, errors=0, p99_ms=math.nan)


def test_the_slos_are_the_ones_the_project_declares():
    slo_doc = (Path(__file__).resolve().parents[2] / "docs" / "slo.md").read_text()
    performance = (Path(__file__).resolve().parents[2] / "docs" / "performance.md").read_text()
    assert "99.5 % of API requests do not answer 5xx" in slo_doc
    assert slo.AVAILABILITY_BUDGET == 0.005
    assert "95 % of API requests complete within 500 ms" in slo_doc
    assert slo.LATENCY_THRESHOLD_MS == 500
    assert "p99 < 100 ms, 0 lost or doubled" in performance
    assert slo.WEBHOOKS.p99_ms == 100


def test_memory_growth_is_bounded_by_a_share_or_a_floor_whichever_is_larger():
    assert slo.memory_ok(100_000, 120_000)
    assert not slo.memory_ok(200_000, 241_000)
    assert slo.memory_ok(10_000, 10_000 + slo.MEMORY_GROWTH_FLOOR_KB)  # small process
    assert slo.growth_pct(100_000, 110_000) == pytest.approx(10.0)
    assert slo.growth_pct(0, 5) == 0.0


def test_connections_that_keep_growing_are_a_leak():
    assert not slo.connections_flat(list(range(10, 40)))
    assert not slo.connections_flat([])


def test_pools_opening_and_closing_overflow_connections_are_not_a_leak():
    # The first full soak: 32 after the load run, idle ones closed, back up to 21 in a
    # busy minute; bounded and ending below the start.
    soak = [32] * 22 + [14, 12, 11, 14] * 10 + [7, 6, 9, 10] * 10 + [20, 21] * 15
    assert slo.connections_flat(soak)
    assert slo.connections_flat([30, 32, 31, 30 + slo.CONNECTION_SPREAD])
    assert not slo.connections_flat([10, 10 + slo.CONNECTION_SPREAD + 1])


# --- the report contract -------------------------------------------------------------------


def test_a_load_report_holds_the_contract_and_lands_dated_under_reports_load(tmp_path):
    started = datetime(2026, 12, 6, 23, 0, 1, tzinfo=UTC)
    finished = started + timedelta(minutes=12, seconds=3)
    doc = report.build("load", started, finished,
                       [scenario(), scenario(name="queue-flood", target_rps=None)],
                       commit="abc123")
    path = report.write(tmp_path, doc, finished)

    assert path == tmp_path / "reports" / "load" / "load-20261206T231204Z.json"
    written = json.loads(path.read_text())
    assert report.problems(written) == []
    assert written["kind"] == "load"
    assert written["started_at"] == "2026-12-06T23:00:01Z"
    assert written["finished_at"] == "2026-12-06T23:12:04Z"
    assert written["git_commit"] == "abc123"
    assert written["passed"] is True
    first = written["scenarios"][0]
    assert set(first) == set(report.SCENARIO_KEYS)
    assert first["target_rps"] == 100.0 and isinstance(first["target_rps"], float)
    assert first["slo"] == {"p99_ms": 100.0, "error_rate": 0.005}
    assert written["scenarios"][1]["target_rps"] is None
    assert "processes" not in written
    assert report.newest(tmp_path, "load") == path


def test_one_failed_scenario_fails_the_report():
    now = datetime.now(UTC)
    doc = report.build("load", now, now, [scenario(), scenario(passed=False)], commit="x")
    assert doc["passed"] is False
    assert report.build("load", now, now, [], commit="x")["passed"] is False


def test_a_soak_report_lists_processes_and_connections_and_fails_on_their_bounds(tmp_path):
    now = datetime(2026, 12, 7, 0, 1, 2, tzinfo=UTC)
    processes = [{"name": "api", "rss_start_kb": 100, "rss_end_kb": 110, "growth_pct": 10.0}]
    connections = {"min": 30, "max": 31, "start": 30, "end": 31}
    doc = report.build("soak", now, now, [scenario(name="soak", slo=slo.SOAK)], commit="x",
                       processes=processes, db_connections=connections, extra_checks=False)
    path = report.write(tmp_path, doc, now)
    written = json.loads(path.read_text())
    assert path.name == "soak-20261207T000102Z.json"
    assert written["processes"] == processes
    assert written["db_connections"] == connections
    assert written["passed"] is False  # a scenario passed, the memory/connection check not
    assert report.problems(written) == []


def test_a_report_that_breaks_the_contract_is_refused_and_named(tmp_path):
    now = datetime.now(UTC)
    doc = report.build("soak", now, now, [scenario()], commit="x")
    doc["scenarios"][0]["errors"] = "none"
    doc["db_connections"] = {"min": 1}
    with pytest.raises(ValueError, match=r"scenarios\[0\]\.errors.*db_connections"):
        report.write(tmp_path, doc, now)
    assert not (tmp_path / "reports" / "load").exists() or not list(
        (tmp_path / "reports" / "load").glob("*.json"))


def test_a_scenario_without_answers_reports_minus_one_not_nan():
    out = scenario(p50_ms=math.nan, p95_ms=math.nan, p99_ms=math.nan).as_dict()
    assert out["p99_ms"] == -1.0
    json.dumps(out, allow_nan=False)


# --- /proc parsing -------------------------------------------------------------------------


def test_rss_is_the_resident_set_without_shared_memory():
    assert rss.parse_vmrss_kb(STATUS) == 40960 - 28672


def test_a_kernel_thread_or_zombie_has_no_rss():
    assert rss.parse_vmrss_kb("Name:\tkthreadd\nState:\tS (sleeping)\n") is None


def test_rss_without_rssshmem_is_vmrss():
    assert rss.parse_vmrss_kb("VmRSS:\t 1234 kB\n") == 1234


def test_the_parent_pid_survives_a_command_with_spaces_and_parentheses():
    assert rss.parse_ppid("4242 (python (x) y) S 812 4242 4242 0 -1 4194304") == 812


def test_a_service_counts_its_whole_process_tree(tmp_path):
    def proc(pid: int, ppid: int, kb: int) -> None:
        folder = tmp_path / str(pid)
        folder.mkdir()
        (folder / "stat").write_text(f"{pid} (p {pid}) S {ppid} 1 1 0")
        (folder / "status").write_text(f"VmRSS:\t{kb} kB\nRssShmem:\t0 kB\n")

    proc(10, 1, 100)
    proc(11, 10, 20)
    proc(12, 11, 3)
    proc(20, 1, 50)
    (tmp_path / "self").mkdir()
    assert rss.tree_rss_kb({"postgres": 10, "redis": 20, "gone": 99}, tmp_path) == {
        "postgres": 123, "redis": 50, "gone": None}


# --- the oldest-age alert --------------------------------------------------------------------


def test_the_alert_rule_is_read_from_the_rule_file():
    rule = alert.oldest_age_rule()
    assert rule == alert.AgeRule(threshold_s=300.0, for_s=60.0, severity="warning")
    assert alert.oldest_age_rule(severity="critical").threshold_s == 600.0


def test_the_alert_fires_after_its_for_and_resolves_when_the_age_drops():
    rule = alert.AgeRule(threshold_s=10, for_s=4, severity="warning")
    samples = [(0, 0), (2, 11), (4, 12), (6, 15), (8, 9), (10, 0)]
    trace = alert.evaluate(samples, rule)
    assert (trace.fired_at, trace.resolved_at, trace.peak_age_s) == (6, 8, 15)


def test_a_blip_over_the_threshold_shorter_than_for_never_fires():
    rule = alert.AgeRule(threshold_s=10, for_s=4, severity="warning")
    trace = alert.evaluate([(0, 11), (2, 12), (4, 0), (6, 11)], rule)
    assert trace.fired_at is None and trace.resolved_at is None and trace.peak_age_s == 12


@pytest.mark.parametrize("text, seconds", [("1m", 60.0), ("30s", 30.0), ("250ms", 0.25),
                                           ("2h", 7200.0)])
def test_prometheus_durations(text, seconds):
    assert alert.duration_s(text) == seconds


# --- webhook deliveries with duplicates ---------------------------------------------------


def test_webhook_batches_carry_redeliveries_and_exact_replays_of_earlier_events():
    batch = workload.webhook_batch("127.0.0.1", 8000, ["cus_a", "cus_b"], 1000,
                                   "whsec_" + "x" * 32, seed=3)
    assert len(batch.requests) == 1000
    assert batch.kinds.count("webhook-replay") == 1000 // workload.REPLAY_EVERY
    assert batch.kinds.count("webhook-redelivery") == (
        1000 // workload.REDELIVERY_EVERY - 1000 // workload.REPLAY_EVERY)
    assert len(set(batch.event_ids)) == len(batch.event_ids) == batch.kinds.count("webhook")
    firsts: dict[str, int] = {}
    for i, (kind, event) in enumerate(zip(batch.kinds, batch.event_of, strict=True)):
        if kind == "webhook":
            firsts[event] = i
            continue
        assert event in firsts and firsts[event] < i  # a copy of an event sent before
        original = batch.requests[firsts[event]]
        if kind == "webhook-replay":
            assert batch.requests[i] == original and batch.expected[i] == 409
        else:  # same body, a new signature: Stripe's own retry
            assert batch.requests[i] != original and batch.expected[i] == 200
            assert batch.requests[i].split(b"\r\n\r\n", 1)[1] == original.split(b"\r\n\r\n", 1)[1]
    copies = [e for k, e in zip(batch.kinds, batch.event_of, strict=True) if k != "webhook"]
    assert len(copies) == len(set(copies))  # each event copied at most once


def test_errors_are_counted_against_each_requests_own_expected_status():
    batch = workload.Batch()
    batch.add(b"a", 200, "read-one")
    batch.add(b"b", 409, "webhook-replay")
    batch.add(b"c", 202, "create")
    assert batch.errors([200, 409, 202]) == {}
    assert batch.errors([200, 200, 0]) == {"webhook-replay:200": 1, "create:0": 1}


def test_creates_are_spread_over_enough_tenants_to_stay_inside_the_pro_quota():
    assert workload.tenants_for(10_000) == 12
    assert workload.tenants_for(1) == 1
    assert workload.creates_in(1000) == 150
