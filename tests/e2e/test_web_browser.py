"""The web app in a real browser: Debian's Chromium (/usr/bin/chromium, headless, no
browser download) driven by Playwright, against the built app (`next start`) proxying
/api/* to a real API, worker and relay on the test stack's Postgres and Redis.

Flows: signup → mailed link → verify → login → questionnaire → live status → scores and
roadmap; a second tenant sees nothing of the first; CSRF and session expiry; an API error
shows its trace_id; the questionnaire by keyboard alone; axe-core on every page (no serious
or critical violation); no console errors. Screenshots of each page at desktop and phone
size go to web/screenshots/ (ignored by git) for a person to look at.

Chromium missing: as root (CI, where `make test` installs it) the tests FAIL; as an
ordinary user they skip and say how to install it.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from tests.support import httpclient
from tests.support.mail import wait_for_mail
from tests.support.processes import processes
from tests.support.stack import TestStack
from tests.support.users import PASSWORD, VERIFY_SUBJECT, answers, signup
from tests.support.wait import wait_until

from rampart.devstack.ports import free_port
from rampart.webapp.build import build
from rampart.webapp.paths import WEB_DIR

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# The flags the machine notes give: without the background-networking ones, Chromium's
# connections are refused by a closed network many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = WEB_DIR / "screenshots"
AXE = WEB_DIR / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LINK = re.compile(r"(http://\S+/verify-email#token=\S+)")
INVITATION_LINK = re.compile(r"(http://\S+/accept-invitation#token=\S+)")


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    why = f"{CHROMIUM} is missing: the browser tests need Debian's chromium"
    if os.geteuid() == 0 or os.environ.get("CI"):
        pytest.fail(f"{why}; `make test` installs it as root (make chromium)")
    pytest.skip(f"{why}: install it (sudo apt-get install chromium), then run the tests again")


@pytest.fixture(scope="module")
def pipeline(stack: TestStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """API, worker and relay; then the built web app on a free port, proxying to the API."""
    _chromium()
    build()
    web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    log_dir = tmp_path_factory.mktemp("web-procs")
    with processes(stack, log_dir) as procs:
        # Links in mails open this web app.
        api = procs.spawn("api", EMAIL_LINK_BASE_URL=web_url)
        worker = procs.spawn("worker", WORKER_CONCURRENCY="1", EMAIL_LINK_BASE_URL=web_url)
        relay = procs.spawn("relay")
        for proc in (api, worker, relay):
            proc.wait_ready()
        assert api.url is not None
        with (log_dir / "web.out").open("ab") as out:
            web = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "rampart.cli", "web", "serve", "--port", str(web_port)],
                env=stack.process_env(RAMPART_API_URL=api.url),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(lambda: _answers(f"{web_url}/login"), 60, 0.2, message=lambda: "web app up")
            yield {"api": api.url, "web": web_url, "procs": procs}
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            try:
                web.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(web.pid, signal.SIGKILL)
                web.wait()


def _answers(url: str) -> bool:
    try:
        return httpclient.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser(pipeline: dict) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Each launch gets a new, empty profile (Playwright's own temporary user-data-dir).
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(_chromium()), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Tab:
    """A page in its own browser context (its own cookies), recording console errors."""

    def __init__(self, browser: Any, web: str, viewport: str = "desktop") -> None:
        self.context = browser.new_context(viewport=VIEWPORTS[viewport], base_url=web)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        self.page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )

    def unexpected_errors(self) -> list[str]:
        # Chromium logs every 4xx/5xx fetch as a console error; the app asks who is logged
        # in (401 when nobody is) and some tests provoke errors on purpose.
        return [e for e in self.errors if "Failed to load resource" not in e]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, pipeline: dict) -> Iterator[Tab]:
    opened = Tab(browser, pipeline["web"])
    yield opened
    errors = opened.unexpected_errors()
    opened.close()
    assert not errors, f"console errors: {errors}"


def _log_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/assessments")


def _account(pipeline: dict, name: str = "Acme"):
    with httpclient.client(base_url=pipeline["api"], timeout=30) as client:
        return signup(client, name)


def _answer_all(page: Any, value: int = 3) -> None:
    page.wait_for_selector("fieldset[data-question]")
    for question in page.eval_on_selector_all(
        "fieldset[data-question]", "els => els.map(e => e.dataset.question)"
    ):
        page.check(f"input[name='{question}'][value='{value}']")


def _axe(page: Any) -> list[str]:
    """Serious and critical axe-core violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # evaluated by the driver, not subject to the CSP
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def _shoot(page: Any, name: str, viewport: str) -> None:
    """Save the page as a person sees it; it must fit the viewport's width."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= VIEWPORTS[viewport]["width"], f"{name} scrolls sideways on a {viewport}"
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport}.png"), full_page=True)


# --- flows --------------------------------------------------------------------------------


def test_signup_verify_questionnaire_live_status_and_roadmap(tab: Tab, pipeline: dict) -> None:
    page = tab.page
    email = f"web-{uuid.uuid4().hex[:10]}@example.com"
    page.goto("/signup")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Team name").fill("Browser Co")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Check your mail").wait_for()

    mail = wait_for_mail(email, VERIFY_SUBJECT, timeout=60)
    link = LINK.search(mail.text)
    assert link and link.group(1).startswith(pipeline["web"]), mail.text
    page.goto(link.group(1))
    page.get_by_test_id("verified").wait_for()
    assert "#token" not in page.url  # the token leaves the address bar at once

    _log_in(page, email)
    cookies = {c["name"]: c for c in tab.context.cookies()}
    assert cookies["__Host-session"]["httpOnly"] and cookies["__Host-session"]["secure"]
    assert not page.evaluate("() => Object.keys(localStorage).length + sessionStorage.length")

    page.goto("/questionnaire")
    _answer_all(page, 3)
    page.get_by_role("button", name="Submit for scoring").click()
    page.wait_for_url(re.compile(r".*/assessments/[0-9a-f-]{36}$"))
    seen: set[str] = set()

    def completed() -> bool:
        status = page.get_by_test_id("status").get_attribute("data-status")
        seen.add(status or "")
        return status == "completed"

    wait_until(completed, 90, 0.1, message=lambda: f"completed; saw {seen}")
    assert page.get_by_test_id("overall").is_visible()
    bars = page.locator("ul.bars li")
    assert bars.count() == 4
    roadmap = page.get_by_test_id("roadmap")
    roadmap.wait_for()
    assert roadmap.get_by_text(re.compile(r"Next (30|60|90) days")).count() >= 1
    assert roadmap.locator("ol.roadmap li").count() >= 1
    page.goto("/assessments")
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody tr").count() == 1

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login?logged_out=1")
    assert not [c for c in tab.context.cookies() if c["name"] == "__Host-session"]
    page.goto("/assessments")
    page.wait_for_url("**/login?expired=1")


def test_the_list_follows_assessments_until_they_are_done(tab: Tab, pipeline: dict) -> None:
    account = _account(pipeline)
    page = tab.page
    _log_in(page, account.email)
    with httpclient.client(base_url=pipeline["api"], timeout=30) as client:
        for value in (1, 4):
            made = client.post(
                "/api/v1/assessments", json={"answers": answers(value)}, headers=account.headers
            )
            assert made.status_code == 202, made.text
    page.goto("/assessments")
    page.locator("tbody tr").nth(1).wait_for()
    wait_until(
        lambda: page.locator("td[data-status=completed]").count() == 2,
        90,
        0.2,
        message=lambda: f"both completed in the list: {page.locator('tbody').inner_text()}",
    )


def test_a_second_tenant_sees_nothing_of_the_first(tab: Tab, pipeline: dict) -> None:
    first = _account(pipeline, "First")
    with httpclient.client(base_url=pipeline["api"], timeout=30) as client:
        made = client.post(
            "/api/v1/assessments", json={"answers": answers(2)}, headers=first.headers
        )
        assert made.status_code == 202, made.text
    second = _account(pipeline, "Second")
    page = tab.page
    _log_in(page, second.email)
    page.get_by_test_id("no-assessments").wait_for()
    page.goto(f"/assessments/{made.json()['id']}")
    notice = page.get_by_test_id("error-notice")
    notice.wait_for()
    assert "not found" in notice.inner_text().lower()
    page.goto("/team")
    page.locator("tbody tr").first.wait_for()
    assert page.locator("tbody tr").count() == 1
    assert first.email not in page.content()


def test_csrf_is_required_and_an_expired_session_sends_you_to_login(
    tab: Tab, pipeline: dict, stack: TestStack
) -> None:
    account = _account(pipeline)
    page = tab.page
    _log_in(page, account.email)
    body = {"answers": answers(1)}
    script = """async ([body, token]) => {
        const headers = {'content-type': 'application/json'};
        if (token) headers['X-CSRF-Token'] = token;
        const r = await fetch('/api/v1/assessments', {method: 'POST', headers,
            body: JSON.stringify(body), credentials: 'same-origin'});
        return [r.status, await r.json()];
    }"""
    status, answer = page.evaluate(script, [body, None])
    assert (status, answer["error"]["code"]) == (403, "csrf_failed")
    status, answer = page.evaluate(script, [body, "forged.token"])
    assert (status, answer["error"]["code"]) == (403, "csrf_failed")
    csrf = next(c["value"] for c in tab.context.cookies() if c["name"] == "__Host-csrf")
    status, _ = page.evaluate(script, [body, csrf])
    assert status == 202

    # The session ends server-side (its idle timeout elapsed: Redis dropped the key).
    session = next(c["value"] for c in tab.context.cookies() if c["name"] == "__Host-session")
    key = "rampart:session:" + hashlib.sha256(session.encode()).hexdigest()
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    assert broker.delete(key) == 1
    page.goto("/billing")
    page.wait_for_url("**/login?expired=1")
    page.get_by_test_id("session-ended").wait_for()


def test_an_api_error_shows_its_trace_id(tab: Tab, pipeline: dict, stack: TestStack) -> None:
    account = _account(pipeline)
    page = tab.page
    _log_in(page, account.email)
    page.goto("/questionnaire")
    _answer_all(page, 4)
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    broker.set("rampart:maintenance:read_only", "1")  # writes now get 503 read_only
    try:
        with page.expect_response("**/api/v1/assessments") as response_info:
            page.get_by_role("button", name="Submit for scoring").click()
        response = response_info.value
        assert response.status == 503
        shown = page.get_by_test_id("trace-id")
        shown.wait_for()
        assert shown.inner_text() == response.json()["error"]["trace_id"]
        assert "Quote this id to support" in page.get_by_test_id("error-notice").inner_text()
    finally:
        broker.delete("rampart:maintenance:read_only")
        # API processes re-read the flag at most once a second: writes work again when a
        # harmless one (an unknown verification token) gets its 400, not 503.
        wait_until(
            lambda: (
                httpclient.post(
                    f"{pipeline['api']}/api/v1/auth/verify-email", json={"token": "x"}, timeout=5
                ).status_code
                == 400
            ),
            10,
            0.1,
            message=lambda: "writes accepted again after read-only mode",
        )


def test_field_errors_show_beside_their_fields(tab: Tab, pipeline: dict) -> None:
    page = tab.page
    page.goto("/signup")
    page.get_by_label("Email").fill("not-an-address")
    page.get_by_role("button", name="Sign up").click()  # stopped by the generated Zod schema
    assert page.locator("#email-error").inner_text()
    assert page.get_by_label("Email").get_attribute("aria-invalid") == "true"
    page.get_by_label("Email").fill(f"weak-{uuid.uuid4().hex[:8]}@example.com")
    page.get_by_label("Password", exact=True).fill("password1234")
    page.get_by_label("Team name").fill("Weak")
    page.get_by_role("button", name="Sign up").click()  # the API's policy refuses it: 422
    page.locator("#password-error").wait_for()
    assert page.get_by_label("Password", exact=True).get_attribute("aria-invalid") == "true"


def test_the_questionnaire_by_keyboard_alone(tab: Tab, pipeline: dict) -> None:
    account = _account(pipeline)
    page = tab.page
    _log_in(page, account.email)
    page.goto("/questionnaire")
    page.wait_for_selector("fieldset[data-question]")
    questions = page.locator("fieldset[data-question]").count()
    for _ in range(40):  # past the skip link and the navigation, to the first question
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.type") == "radio":
            break
    for _ in range(questions):
        page.keyboard.press("Space")  # 0
        for _ in range(3):
            page.keyboard.press("ArrowRight")  # 1, 2, 3
        page.keyboard.press("Tab")  # the next question (a radio group is one tab stop)
    assert page.evaluate("() => document.activeElement.id") == "context"
    page.keyboard.type("Typed without a mouse.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/assessments/[0-9a-f-]{36}$"))


def test_an_owner_invites_and_the_invitee_joins_through_the_mailed_link(
    browser: Any, tab: Tab, pipeline: dict
) -> None:
    owner = _account(pipeline, "Inviting")
    page = tab.page
    _log_in(page, owner.email)
    page.goto("/team")
    invitee = f"invitee-{uuid.uuid4().hex[:8]}@example.com"
    page.get_by_label("Email", exact=True).fill(invitee)
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Send invitation").click()
    page.get_by_text(f"Invitation sent to {invitee} as member.").wait_for()

    mail = wait_for_mail(invitee, "", timeout=60)
    link = INVITATION_LINK.search(mail.text)
    assert link and link.group(1).startswith(pipeline["web"]), mail.text
    joining = Tab(browser, pipeline["web"])
    try:
        joining.page.goto(link.group(1))
        joining.page.get_by_label("Choose a password").fill(PASSWORD)
        joining.page.get_by_role("button", name="Accept").click()
        joining.page.get_by_role("heading", name="Invitation accepted").wait_for()
        _log_in(joining.page, invitee)
        joining.page.goto("/team")
        joining.page.get_by_text(owner.email).wait_for()
        # A member sees the team, and manages nothing.
        assert joining.page.get_by_role("button", name=re.compile("Remove")).count() == 0
        assert not joining.unexpected_errors()
    finally:
        joining.close()

    page.reload()
    row = page.locator("tr", has_text=invitee)
    row.wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=re.compile("Remove")).click()
    row.wait_for(state="detached")


def test_checkout_goes_to_stripe(tab: Tab, pipeline: dict) -> None:
    account = _account(pipeline)
    page = tab.page
    _log_in(page, account.email)
    page.goto("/billing")
    page.get_by_test_id("plan").wait_for()
    assert "free" in page.get_by_test_id("plan").inner_text()
    # The browser is sent to the checkout page the API got from (the fake) Stripe; that
    # page's host does not resolve here, so the navigation itself is what is checked. The
    # API's answer is read on its way through (route.fetch sends the real request).
    answered: list[dict] = []

    def observe(route: Any) -> None:
        response = route.fetch()
        answered.append({"status": response.status, **response.json()})
        route.fulfill(response=response)

    page.route("**/api/v1/billing/checkout", observe)
    leaving = lambda r: r.is_navigation_request() and not r.url.startswith(pipeline["web"])  # noqa: E731
    with page.expect_request(leaving) as navigation:
        page.get_by_role("button", name="Upgrade to Pro").click()
    assert answered[0]["status"] == 200
    assert navigation.value.url == answered[0]["url"]


def test_every_page_is_accessible_on_desktop_and_phone(browser: Any, pipeline: dict) -> None:
    account = _account(pipeline)
    with httpclient.client(base_url=pipeline["api"], timeout=30) as client:
        made = client.post(
            "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
        )
    assessment = f"/assessments/{made.json()['id']}"
    public = ["/", "/login", "/signup", "/verify-email", "/accept-invitation"]
    private = ["/assessments", assessment, "/questionnaire", "/team", "/billing"]
    problems: dict[str, list[str]] = {}
    for viewport in VIEWPORTS:
        opened = Tab(browser, pipeline["web"], viewport)
        page = opened.page
        try:
            for path in public:
                page.goto(path)
                page.wait_for_load_state("networkidle")
                problems[f"{path} {viewport}"] = _axe(page)
                _shoot(page, path.strip("/").replace("/", "-") or "home", viewport)
            _log_in(page, account.email)
            for path in private:
                page.goto(path)
                page.wait_for_load_state("networkidle")
                if path == assessment:
                    page.get_by_test_id("roadmap").wait_for(timeout=90_000)
                name = "assessment" if path == assessment else path.strip("/")
                problems[f"{path} {viewport}"] = _axe(page)
                _shoot(page, name, viewport)
            assert not opened.unexpected_errors(), opened.unexpected_errors()
        finally:
            opened.close()
    failing = {page: found for page, found in problems.items() if found}
    assert not failing, f"serious/critical axe violations: {failing}"
