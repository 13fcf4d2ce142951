"""A real headless Chromium drives every console page: signs in through the admin login, decides
approvals by mouse and by keyboard, watches the overview update live, checks each page with
axe-core at desktop and phone widths, and screenshots each page (into docs/screenshots under `make screenshots`).
It also loads the console, the admin and the API docs under their Content-Security-Policy: nothing
of theirs is refused, and a script slipped into a page does not run."""

import os
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from orchestrator.identity.principal import Principal
from routing import services as routing
from sessions import services as sessions
from tests.dashboard.conftest import PASSWORD

# Debian's packages (scripts/services.sh installs them): naming both keeps Selenium Manager,
# which would try to download a browser, out of the picture.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: the first page load of a cold browser on a busy CI machine can be slow.
WAIT_SECONDS = 30
# axe-core 4.14.1 from the npm package (npm pack axe-core), vendored: no network in the test.
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The pictures docs/dashboard.md shows are refreshed on purpose (`make screenshots`), not by every
# test run: a run would otherwise leave the checkout changed, the pixels differing by a timestamp.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP, PHONE = (1280, 1000), (375, 900)

FINANCE = Principal(subject="agent:finance-bot", role="finance")
MANAGER = Principal(subject="agent:manager-bot", role="manager")
ENGINEERING = Principal(subject="agent:build-bot", role="engineering")


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]:
        options.add_argument(flag)
    # The console's messages, where Chromium reports what the page's Content-Security-Policy refused.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def sign_in(browser, live_server, username, *, landing="status-heading"):
    browser.get(f"{live_server.url}/admin/login/?next=/dashboard/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, landing)))


def wait_for(browser, by, value):
    return WebDriverWait(browser, WAIT_SECONDS).until(ec.visibility_of_element_located((by, value)))


def axe_violations(browser):
    browser.execute_script(AXE.read_text())
    browser.set_script_timeout(WAIT_SECONDS)
    violations = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => v.id + ' (' + v.impact + '): ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))));"
    )
    return violations


def a_working_system():
    """A little of everything, so each page has something to show."""
    routed = routing.route_task(
        principal=FINANCE,
        type="pay-invoice",
        to_role="finance",
        trace_id="trace-invoice-7731",
        payload={"invoice": "INV-7731", "amount_eur": 1200, "vendor": "Acme GmbH"},
        requires_approval=True,
        approver_role="manager",
        approval_notes="Over the 1,000 EUR limit",
    )
    routing.route_task(
        principal=FINANCE,
        type="buy-laptops",
        to_role="finance",
        trace_id="trace-laptops-12",
        payload={"count": 12, "model": "T14"},
        requires_approval=True,
        approver_role="manager",
        expires_in=3600,
    )
    for n, kind in enumerate(["build-release", "rotate-keys", "triage-bug"]):
        routing.route_task(
            principal=MANAGER, type=kind, to_role="engineering", trace_id=f"trace-eng-{n}", payload={"ticket": n}
        )
    handoff = routing.route_task(
        principal=FINANCE, type="quarterly-report", to_role="manager", trace_id="trace-report-q4", payload={}
    ).task
    routing.claim_task(principal=MANAGER, task_id=handoff.id, trace_id="trace-report-q4")
    session = sessions.create_session(
        principal=MANAGER,
        role="manager",
        trace_id="trace-report-q4",
        task_id=handoff.id,
        metadata={"model": "claude", "quarter": "Q4"},
    )
    sessions.transition_session(
        principal=MANAGER, session_id=session.pk, target_status="active", trace_id="trace-report-q4"
    )
    sessions.append_message(principal=MANAGER, session_id=session.pk, content="Pulling Q4 ledger totals.", trace_id="t")
    sessions.append_message(principal=MANAGER, session_id=session.pk, content="Draft ready for review.", trace_id="t")
    for _ in range(3):
        sessions.create_session(principal=FINANCE, role="finance", trace_id="trace-invoice-7731")
    call_command("seal_audit")
    call_command("verify_audit")
    sessions.create_session(principal=ENGINEERING, role="engineering", trace_id="trace-eng-0")
    return routed, session


@pytest.mark.django_db(transaction=True)
def test_staff_sign_in_open_the_inbox_and_approve_with_a_click(browser, live_server, staff_user):
    routed, _ = a_working_system()

    sign_in(browser, live_server, staff_user.username)
    browser.find_element(By.LINK_TEXT, "Approvals").click()
    row = wait_for(browser, By.ID, f"approval-{routed.approval_id}")
    assert "pay-invoice" in row.text
    row.find_element(By.CSS_SELECTOR, "input[name=notes]").send_keys("ok by me")
    row.find_element(By.CSS_SELECTOR, "button.approve").click()

    message = wait_for(browser, By.CSS_SELECTOR, ".messages .success")
    assert message.text == f"Approval {routed.approval_id} approved."
    assert not browser.find_elements(By.ID, f"approval-{routed.approval_id}")


@pytest.mark.django_db(transaction=True)
def test_an_approval_page_is_decided_with_the_keyboard_alone(browser, live_server, staff_user):
    routed, _ = a_working_system()
    sign_in(browser, live_server, staff_user.username)

    browser.get(f"{live_server.url}/dashboard/approvals/{routed.approval_id}/")
    notes = wait_for(browser, By.ID, "decision-notes")
    # From the notes field, Tab reaches Approve, then Reject; Enter presses the focused button.
    notes.send_keys("Not this quarter")
    notes.send_keys(Keys.TAB)
    browser.switch_to.active_element.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.text == "Reject"
    focused.send_keys(Keys.ENTER)

    assert wait_for(browser, By.ID, "approval-status").text == "rejected"
    assert "Not this quarter" in browser.page_source
    routed.task.refresh_from_db()
    assert routed.task.status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_the_overview_updates_live_when_work_is_routed(browser, live_server, staff_user):
    sign_in(browser, live_server, staff_user.username)
    assert "No tasks are waiting" in browser.find_element(By.ID, "panel-queues").text
    # Give the page's EventSource a moment to connect before the change it must see.
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script("return document.querySelector('[sse-connect]') !== null")
    )
    threading.Event().wait(1.5)

    routing.route_task(principal=FINANCE, type="late-arrival", to_role="engineering", trace_id="trace-live", payload={})

    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, '#role-queues tr[data-role="engineering"]')
    )
    assert "late-arrival" not in browser.current_url  # no navigation happened: the panel was swapped in


PAGES = {
    "overview": ("/dashboard/", "status-heading"),
    "sessions": ("/dashboard/sessions/", "session-list"),
    "session": ("/dashboard/sessions/{session_id}/", "session-transcript"),
    "queues": ("/dashboard/queues/?role=engineering", "queue-tasks"),
    "approvals": ("/dashboard/approvals/", "approval-queue"),
    "approval": ("/dashboard/approvals/{approval_id}/", "decision-notes"),
    "audit": ("/dashboard/audit/", "audit-events"),
    "trace": ("/dashboard/trace/trace-report-q4", "trace-timeline"),
    "profiles": ("/dashboard/profiles/", "profiles-heading"),
}


@pytest.mark.django_db(transaction=True)
def test_every_page_passes_axe_at_desktop_and_phone_width_and_is_screenshotted(
    browser, live_server, staff_user, tmp_path
):
    routed, session = a_working_system()
    sign_in(browser, live_server, staff_user.username)
    screenshots = DOCS_SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "docs" else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)

    problems = {}
    for name, (path, landmark) in PAGES.items():
        url = live_server.url + path.format(session_id=session.id, approval_id=routed.approval_id)
        for label, (width, height) in {"desktop": DESKTOP, "phone": PHONE}.items():
            browser.set_window_size(width, height)
            browser.get(url)
            wait_for(browser, By.ID, landmark)
            # Nothing wider than the window: a phone reader never scrolls sideways to find a control.
            overflow = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 0:
                problems[f"{name} {label}"] = [f"page is {overflow}px wider than the window"]
            violations = axe_violations(browser)
            if violations:
                problems.setdefault(f"{name} {label}", []).extend(violations)
            full_height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(width, min(full_height, 4000))
            assert browser.save_screenshot(str(screenshots / f"{name}-{label}.png"))

    assert problems == {}, "\n".join(f"{page}: {problem}" for page, found in problems.items() for problem in found)


def refused_by_the_policy(browser):
    """What Chromium reported refusing under the page's Content-Security-Policy since the last call."""
    return [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]


def slip_in_a_script(browser):
    """Add an inline <script> to the page, as markup that escaped escaping would; True if it ran."""
    return browser.execute_script(
        "window.slippedIn = false;"
        "const script = document.createElement('script');"
        "script.textContent = 'window.slippedIn = true';"
        "document.body.appendChild(script);"
        "return window.slippedIn;"
    )


@pytest.mark.django_db(transaction=True)
def test_the_console_the_admin_and_the_api_docs_work_under_their_content_security_policy(
    browser, live_server, staff_user
):
    routed, session = a_working_system()
    sign_in(browser, live_server, staff_user.username)
    pages = {
        **PAGES,
        "admin index": ("/admin/", "content"),
        "admin tasks": ("/admin/routing/task/", "changelist"),
        "admin task": (f"/admin/routing/task/{routed.task.id}/change/", "content-main"),
        "admin approvals": ("/admin/approvals/approval/", "changelist"),
        "api docs": ("/api/docs/", "operations-tag-sessions"),
    }

    refused = {}
    for name, (path, landmark) in pages.items():
        browser.get(live_server.url + path.format(session_id=session.id, approval_id=routed.approval_id))
        wait_for(browser, By.ID, landmark)
        if messages := refused_by_the_policy(browser):
            refused[name] = messages
    # What the last page loaded after its landmark showed.
    threading.Event().wait(1)
    if messages := refused_by_the_policy(browser):
        refused["after the last page"] = messages

    assert refused == {}, "\n".join(f"{page}: {message}" for page, found in refused.items() for message in found)


@pytest.mark.django_db(transaction=True)
def test_a_script_slipped_into_a_console_page_does_not_run(browser, live_server, staff_user):
    sign_in(browser, live_server, staff_user.username)

    assert slip_in_a_script(browser) is False
    assert any("script-src 'self'" in message for message in refused_by_the_policy(browser))

    # The same script runs on a page without the policy: the check above can fail.
    browser.get("data:text/html,<p>no policy here</p>")
    assert slip_in_a_script(browser) is True
