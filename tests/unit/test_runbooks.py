"""The runbooks and the SLO document name only things that exist.

For every docs/runbooks/*.md, docs/slo.md and docs/observability.md, in code blocks and
inline code:
- every `rampart ...` is a real (sub)command of the Typer app, with real options;
- every `make <target>` is a target of the Makefile;
and anywhere in the text:
- every relative link points at a file or directory of the repository (and at a heading,
  when it names an anchor);
- every `rampart_*` metric is declared in the code (histograms with their _bucket, _count
  and _sum series) or recorded by a rule in ops/prometheus/rules/;
- every recording-rule name (`level:metric:operation`, e.g. `slo:sli_error:ratio_rate5m`)
  is recorded by a rule in ops/prometheus/rules/;
- every ```promql block parses (`promtool check rules`, when promtool can be had).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
import typer.main
import yaml
from tests.support.metric_names import code_metrics, recording_rules

from rampart.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs" / "runbooks").glob("*.md")) + [
    ROOT / "docs" / "slo.md",
    ROOT / "docs" / "observability.md",
]
IDS = [str(path.relative_to(ROOT)) for path in DOCS]

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
PROMQL_FENCE = re.compile(r"^[ \t]*```promql[ \t]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
# A PromQL line continues the expression above it when it starts with a binary operator or
# closes a parenthesis, or when the line above ends with an operator or leaves one open.
CONTINUES = re.compile(r"^\s*(?:/|\*|\+|-|>|<|==|!=|\)|and\b|or\b|unless\b|on\b|ignoring\b|group_)")
ENDS_OPEN = re.compile(r"(?:/|\*|\+|-|>|<|\band|\bor|\bunless)\s*$")
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# `rampart` as a command word: not part of a path (.rampart/), a key (rampart:...), a job
# name (rampart-api) or a metric (rampart_...).
COMMAND = re.compile(r"(?<![\w./:{-])rampart(?=[ \t]|$)(.*)$", re.M)
MAKE = re.compile(r"(?<![\w./-])make[ \t]+([A-Za-z0-9_.-]+)")
METRIC = re.compile(r"(?<![\w:])rampart_[a-z0-9_]*[a-z0-9](?!\w)")
RECORDED = re.compile(r"(?<![\w:./-])[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_]+:[a-zA-Z0-9_]+")
SHELL_STOP = re.compile(r"[|;&>#)`\"']")


def code_snippets(text: str) -> list[str]:
    """The contents of fenced code blocks and inline code spans."""
    blocks = [m.group(1) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    return blocks + [m.group(1) for m in INLINE.finditer(prose)]


def commands_in(text: str) -> list[list[str]]:
    """Each `rampart ...` command line as tokens (without `rampart`); `<placeholder>`s become
    ARG, and the command ends at a pipe, redirect, comment or the end of the snippet."""
    found = []
    for snippet in code_snippets(text):
        snippet = re.sub(r"<[^<>\n]+>", "ARG", snippet)
        for match in COMMAND.finditer(snippet):
            rest = SHELL_STOP.split(match.group(1), maxsplit=1)[0]
            found.append(rest.split())
    return found


@cache
def cli():
    # Typer 0.29 ships its own copy of click: recognise groups by their `commands`.
    return typer.main.get_command(app)


def command_problem(tokens: list[str]) -> str | None:
    """None if `rampart <tokens>` names a real command with real options, else why not."""
    command = cli()
    path = ["rampart"]
    rest = list(tokens)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        if sub is None:
            known = ", ".join(sorted(command.commands))
            return f"`{' '.join(path)}` has no subcommand {rest[0]!r} (it has: {known})"
        path.append(rest.pop(0))
        command = sub
    options = {"--help"}
    for param in command.params:
        options.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("-"))
    for token in rest:
        if token.startswith("-") and token.split("=", 1)[0] not in options:
            return f"`{' '.join(path)}` has no option {token!r} (it has: {sorted(options)})"
    return None


@cache
def make_targets() -> frozenset[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\- \t]+?)\s*::?(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(match.group(1).split())
    return frozenset(t for t in targets if not t.startswith("."))


def promql_expressions(text: str) -> list[str]:
    """The expressions of the ```promql blocks: one per line, or several lines joined while
    parentheses are open or an operator links them. `[W]` (a window placeholder) is 5m."""
    found = []
    for block in PROMQL_FENCE.findall(text):
        current: list[str] = []
        for line in block.splitlines():
            if not line.strip() or line.strip().startswith("#"):
                continue
            depth = sum(part.count("(") - part.count(")") for part in current)
            joined = (
                depth > 0
                or CONTINUES.match(line)
                or ENDS_OPEN.search(current[-1] if current else "")
            )
            if current and not joined:
                found.append("\n".join(current))
                current = []
            current.append(line)
        if current:
            found.append("\n".join(current))
    return [expression.replace("[W]", "[5m]") for expression in found]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", text, re.M)}


# --- the checks, per document ----------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_rampart_command_in_the_doc_exists(doc: Path) -> None:
    problems = [
        f"rampart {' '.join(tokens)}: {problem}"
        for tokens in commands_in(doc.read_text())
        if (problem := command_problem(tokens))
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_make_target_in_the_doc_exists(doc: Path) -> None:
    wanted = {m.group(1) for s in code_snippets(doc.read_text()) for m in MAKE.finditer(s)}
    assert not wanted - make_targets(), f"not in the Makefile: {sorted(wanted - make_targets())}"


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_in_the_doc_resolves(doc: Path) -> None:
    problems = []
    for target in LINK.findall(FENCE.sub("", doc.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            problems.append(f"{target}: no such file")
        elif not linked.is_relative_to(ROOT):
            problems.append(f"{target}: outside the repository")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_metric_in_the_doc_is_exposed_or_recorded(doc: Path) -> None:
    known = code_metrics() | recording_rules()
    unknown = sorted(set(METRIC.findall(doc.read_text())) - known)
    assert not unknown, f"neither declared in src/rampart nor a recording rule: {unknown}"


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_recording_rule_in_the_doc_is_recorded(doc: Path) -> None:
    # `rampart:...` names are Redis keys (breakers, read-only flag, sessions), not rules.
    named = {n for n in RECORDED.findall(doc.read_text()) if not n.startswith("rampart:")}
    if not named:
        return
    recorded = recording_rules()
    assert not named - recorded, f"not recorded by any rule: {sorted(named - recorded)}"


def test_every_promql_expression_in_the_docs_parses(tmp_path: Path) -> None:
    from rampart.devstack.prometheus_tools import ensure_binary

    promtool = ensure_binary("promtool")  # fetched if missing: a missing tool fails, never skips
    named = [
        (doc, expression) for doc in DOCS for expression in promql_expressions(doc.read_text())
    ]
    assert len(named) > 40
    rules = [
        {"record": f"docs:expression:n{i}", "expr": expression}
        for i, (_doc, expression) in enumerate(named)
    ]
    path = tmp_path / "docs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "docs", "rules": rules}]}))
    result = subprocess.run(  # noqa: S603 - our own file, a known binary
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    failing = {int(n) for n in re.findall(r"docs:expression:n(\d+)", result.stdout + result.stderr)}
    listing = "\n".join(
        f"{doc.relative_to(ROOT)}: {' '.join(expression.split())}"
        for i, (doc, expression) in enumerate(named)
        if i in failing
    )
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + listing


# --- the checker itself is not vacuous ---------------------------------------------------------


def test_the_docs_exist_and_use_commands_metrics_and_links() -> None:
    texts = [doc.read_text() for doc in DOCS]
    assert len(DOCS) >= 12
    assert sum(len(commands_in(t)) for t in texts) > 30
    assert sum(len(METRIC.findall(t)) for t in texts) > 30
    assert sum(len(LINK.findall(t)) for t in texts) > 20
    assert "rampart_http_request_duration_seconds_bucket" in code_metrics()
    assert "rampart_queue_oldest_age_seconds" in code_metrics()  # a scrape-time family
    assert {"up", "test", "bench"} <= make_targets()


@pytest.mark.parametrize(
    ("snippet", "fine"),
    [
        ("`rampart dlq replay --all`", True),
        ("`rampart trace <trace_id> --no-database --json`", True),
        ("`rampart maintenance read-only on`", True),
        ("```sh\nrampart dlq list   # open ones\ncurl -s x | rampart\n```", True),
        ("`.rampart/logs/api.log` `rampart:breaker:{llm.openai}:state` `rampart-api`", True),
        ("`rampart frobnicate`", False),
        ("`rampart dlq purge`", False),
        ("`rampart trace ID --since 1h`", False),
    ],
)
def test_the_command_check_tells_real_commands_from_invented_ones(snippet: str, fine: bool) -> None:
    problems = [p for tokens in commands_in(snippet) if (p := command_problem(tokens))]
    assert (not problems) is fine, problems


def test_the_link_and_metric_patterns_see_what_they_should() -> None:
    text = "see [slo](../slo.md#freeze-policy) and `rate(rampart_jobs_quarantined_total[5m])`"
    assert LINK.findall(text) == ["../slo.md#freeze-policy"]
    assert METRIC.findall(text) == ["rampart_jobs_quarantined_total"]
    assert METRIC.findall("the `rampart_` prefix, .rampart/logs, rampart:breaker") == []
    assert RECORDED.findall('slo:sli_error:ratio_rate5m{slo="latency"} 10:44:06') == [
        "slo:sli_error:ratio_rate5m"
    ]
    assert slug("Freeze policy") == "freeze-policy"
    assert slug("Alerts, dashboards and incidents") == "alerts-dashboards-and-incidents"
