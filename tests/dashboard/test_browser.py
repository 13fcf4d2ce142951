"""A real headless Chromium signs in through the admin login, opens the dashboard and approves."""

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.dashboard.conftest import PASSWORD

# Debian's packages (scripts/services.sh installs them): naming both keeps Selenium Manager,
# which would try to download a browser, out of the picture.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: the first page load of a cold browser on a busy CI machine can be slow.
WAIT_SECONDS = 30


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
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def sign_in(browser, live_server, username):
    browser.get(f"{live_server.url}/admin/login/?next=/dashboard/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT_SECONDS).until(ec.presence_of_element_located((By.ID, "status-heading")))


@pytest.mark.django_db(transaction=True)
def test_staff_sign_in_open_the_dashboard_and_approve_with_a_click(browser, live_server, staff_user, make_approval):
    approval = make_approval(type="buy-laptops")

    sign_in(browser, live_server, staff_user.username)
    assert browser.current_url == f"{live_server.url}/dashboard/"
    row = browser.find_element(By.ID, f"approval-{approval.id}")
    assert "buy-laptops" in row.text
    row.find_element(By.CSS_SELECTOR, "input[name=notes]").send_keys("ok by me")
    row.find_element(By.CSS_SELECTOR, "button.approve").click()

    message = WebDriverWait(browser, WAIT_SECONDS).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".messages .success"))
    )
    assert message.text == f"Approval {approval.id} approved."
    assert not browser.find_elements(By.ID, f"approval-{approval.id}")
    decided = browser.find_element(By.ID, f"decided-{approval.id}")
    assert "approved" in decided.text
    assert staff_user.username in decided.text
    approval.refresh_from_db()
    assert approval.status == "approved"
    assert approval.decided_by == f"user:{staff_user.username}"
    assert approval.notes == "ok by me"
