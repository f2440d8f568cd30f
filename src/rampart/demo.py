"""`rampart demo`: the product as a newcomer first meets it, against the stack `make up`
runs. It signs up a new demo team, confirms its address with the link the local mail
capture kept, logs in, answers the questionnaire, submits the assessment, follows it
through its statuses live, and prints the scores per dimension and the roadmap.

It speaks only HTTP to the API, as any client does; the one thing it reads from disk is the
confirmation mail in <RAMPART_HOME>/mail/. `rampart demo --url` prints the running API's
address, for the README's curl lines.
"""

from __future__ import annotations

import re
import secrets
import time
from email.utils import parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # imported where used: every `rampart` command imports this module
    import httpx
    from rich.console import Console
    from rich.table import Table

# The statuses an assessment goes through, in order (assessments/schemas.py `Status`).
STEPS = ("queued", "scoring", "scored", "roadmapping", "completed")
DONE = frozenset({"completed", "failed"})
# The demo team's answers (0-5): strong in some dimensions, weak in others, so the scores
# differ and the roadmap has something to say. A level per dimension, a spread within.
DIMENSION_LEVELS = (4, 2, 3, 1)
SPREAD = (1, 0, -1, 0)
MAIL_WAIT_SECONDS = 30.0
VERIFY_SUBJECT = "Confirm your email address"
_LINK_TOKEN = re.compile(r"token=([0-9a-f]{32}\.[A-Za-z0-9_-]{43})")


class DemoFailed(Exception):
    """A step did not go as it should; the message says what to do."""


def running_api(home: Path) -> str | None:
    """The base URL of the API that `rampart up` runs for `home` (its up.json), or None."""
    from rampart.devstack import running

    record = running.running_up(home)
    return record.urls.get(running.API_URL) if record else None


def _problem(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} {response.text[:200]}"
    text = f"{response.status_code} {error.get('code')}: {error.get('message')}"
    if error.get("details"):
        text += f" {error['details']}"
    return text + f" (trace_id {error.get('trace_id')}: `rampart trace` it)"


def _call(http: httpx.Client, method: str, path: str, expect: int, **kwargs: Any) -> Any:
    response = http.request(method, path, **kwargs)
    if response.status_code == 429 and path.endswith("/signup"):
        raise DemoFailed(
            f"{_problem(response)}\nThis IP has used its signups for now "
            "(RATE_LIMIT_SIGNUP_PER_IP of the stack; each accepted signup counts); "
            f"retry in {response.headers.get('retry-after', '?')} s."
        )
    if response.status_code != expect:
        raise DemoFailed(f"{method} {path}: {_problem(response)}")
    return response.json() if response.content else None


def _confirmation_token(mailbox: Path, email: str, timeout: float) -> str:
    """The link token of the confirmation mail to `email`, once the worker has sent it."""
    from rampart.devstack.mailbox import captured

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for mail in captured(mailbox):
            if parseaddr(mail.to)[1] == email and VERIFY_SUBJECT in mail.subject:
                found = _LINK_TOKEN.search(mail.text)
                if found:
                    return found.group(1)
        time.sleep(0.25)
    raise DemoFailed(
        f"no confirmation mail to {email} in {mailbox} after {timeout:g} s: is the worker "
        "running (see the `make up` console), and does this stack capture mail (no SMTP_URL)?"
    )


def _follow(http: httpx.Client, path: str, out: Console, timeout: float) -> dict[str, Any]:
    """Poll the assessment until it is done, a bar and one line per status change."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    seen: str | None = None
    started = time.monotonic()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    ) as progress:
        task = progress.add_task("queued", total=len(STEPS) - 1)
        while True:
            response = http.get(path)
            if response.status_code == 429:  # the per-IP limit: wait as told, keep following
                time.sleep(min(float(response.headers.get("retry-after", 1)), 5.0))
                continue
            if response.status_code != 200:
                raise DemoFailed(f"GET {path}: {_problem(response)}")
            assessment = response.json()
            status = assessment["status"]
            if status != seen:
                seen = status
                progress.console.print(f"  {time.monotonic() - started:5.1f}s  {status}")
                step = STEPS.index(status) if status in STEPS else 0
                progress.update(task, description=status, completed=step)
            if status in DONE:
                return assessment
            if time.monotonic() - started > timeout:
                raise DemoFailed(
                    f"still {status} after {timeout:g} s: see `rampart trace` for its trace "
                    "id, or the worker's console"
                )
            time.sleep(0.5)


def _scores(assessment: dict[str, Any], titles: dict[str, str]) -> Table:
    from rich.table import Table

    table = Table(title=f"Overall score: {assessment['overall_score']}/100", title_justify="left")
    table.add_column("Dimension")
    table.add_column("Score", justify="right")
    table.add_column("Why", overflow="fold")
    for dimension, score in (assessment["dimension_scores"] or {}).items():
        table.add_row(titles.get(dimension, dimension), str(score["score"]), score["rationale"])
    return table


def _roadmap(roadmap: dict[str, Any], titles: dict[str, str]) -> Table:
    from rich.table import Table

    table = Table(title="Roadmap", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("Within")
    table.add_column("Dimension")
    table.add_column("Action", overflow="fold")
    for item in roadmap["items"]:
        table.add_row(
            str(item["priority"]),
            f"{item['horizon_days']} days",
            titles.get(item["dimension"], item["dimension"]),
            item["title"],
        )
    return table


def _answers(questionnaire: dict[str, Any]) -> dict[str, int]:
    dimensions = [d["id"] for d in questionnaire["dimensions"]]
    answers, seen = {}, dict.fromkeys(dimensions, 0)
    for question in questionnaire["questions"]:
        d = dimensions.index(question["dimension"])
        level = DIMENSION_LEVELS[d % len(DIMENSION_LEVELS)]
        spread = SPREAD[seen[question["dimension"]] % len(SPREAD)]
        seen[question["dimension"]] += 1
        answers[question["id"]] = max(0, min(5, level + spread))
    return answers


def run_demo(base: str, mailbox: Path, out: Console, timeout: float) -> None:
    """The whole tour against the API at `base`; DemoFailed says where it stopped."""
    import httpx

    email = f"demo-{secrets.token_hex(4)}@example.com"
    password = secrets.token_urlsafe(18)
    with httpx.Client(base_url=base, timeout=30) as http:
        _call(
            http,
            "POST",
            "/api/v1/auth/signup",
            202,
            json={"email": email, "password": password, "tenant_name": "Demo team"},
        )
        out.print(f"[green]✓[/green] signed up {email} (team “Demo team”)")
        token = _call(
            http, "POST", "/api/v1/auth/login", 200, json={"email": email, "password": password}
        )["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        if not _call(http, "GET", "/api/v1/me", 200)["user"]["email_verified"]:
            link = _confirmation_token(mailbox, email, MAIL_WAIT_SECONDS)
            _call(http, "POST", "/api/v1/auth/verify-email", 200, json={"token": link})
            out.print("[green]✓[/green] confirmed the address with the link from `rampart mail`")
        questionnaire = _call(http, "GET", "/api/v1/assessments/questionnaire", 200)
        titles = {d["id"]: d["title"] for d in questionnaire["dimensions"]}
        answers = _answers(questionnaire)
        accepted = _call(http, "POST", "/api/v1/assessments", 202, json={"answers": answers})
        out.print(
            f"[green]✓[/green] submitted assessment {accepted['id']} ({len(answers)} answers, 0–5)"
        )
        path = f"/api/v1/assessments/{accepted['id']}"
        assessment = _follow(http, path, out, timeout)
        if assessment["status"] == "failed":
            raise DemoFailed(f"the assessment failed: {assessment['error']}")
        out.print(_scores(assessment, titles))
        roadmap = _call(http, "GET", f"/api/v1/roadmaps/{assessment['roadmap_id']}", 200)
        out.print(_roadmap(roadmap, titles))
        how = f"by {assessment['provider']} ({assessment['model']})"
        if assessment["degraded"]:
            how += ", degraded: the fallback scorer answered"
        out.print(f"Scored {how}. Log in as {email} / {password} to look further.")


def demo(
    url: Annotated[
        bool, typer.Option("--url", help="Only print the running API's address, for scripts.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", help="Seconds to wait for the assessment to complete."),
    ] = 120.0,
) -> None:
    """Try the product on the running `make up` stack: sign up a demo team, confirm its
    address, submit an assessment, follow it live, print its scores and roadmap.

    **Examples**

    ```
    $ rampart demo
    $ rampart demo --url
    $ rampart demo --timeout 300
    ```
    """
    import httpx
    from rich.console import Console

    from rampart.config import get_settings

    home = Path(get_settings().rampart_home).resolve()
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    base = running_api(home)
    if base is None:
        err.print(f"[red]no `rampart up` runs for {home}: start it with `make up`.[/red]")
        raise typer.Exit(1)
    if url:
        print(base)
        return
    out = Console(soft_wrap=True, highlight=False)
    out.print(f"Rampart demo against {base} (data in {home})")
    try:
        run_demo(base, home / "mail", out, timeout)
    except DemoFailed as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot talk to the API at {base}: {exc}[/red]")
        raise typer.Exit(1) from None
