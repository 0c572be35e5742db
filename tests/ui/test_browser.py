"""End to end in headless Chromium (Debian's chromium + chromedriver through selenium) against `cloudact ui`:
a wrong key shows a clear error, a read-only key shows acme's runs with the demo run SUCCEEDED and its stages in the
timeline and the first rows of each stage's output, a retried/skipped run shows its attempts, quality results and
notifications, and testco's run id shows nothing. Screenshots of the run pages land in test-artifacts/ (gitignored).

Installed by scripts/browser.sh (called by scripts/test.sh). Without a browser the test is skipped with one loud
line, except under CI=true, where a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import REPO, ServedHistory

ARTIFACTS = REPO / "test-artifacts"
WRONG_KEY = "cdp_0123456789abcdef_" + "x" * 43
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1360,1500",
)


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or ""
    driver = shutil.which("chromedriver") or ""
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        message = f"!!!!! BROWSER TEST NOT RUN: {', '.join(missing)} missing; scripts/browser.sh installs them !!!!!"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def read_only_key(served: ServedHistory) -> str:
    """What a person would paste: a key of acme with only runs:read, issued through the admin API."""
    response = served.api(
        "POST",
        "/api/v1/admin/tenants/acme/api-keys",
        headers={"X-Admin-Token": served.admin_token},
        json={"name": "browser test", "scopes": ["runs:read"]},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


def wait_for(driver: Any, condition: Callable[[Any], Any], timeout: float = 10) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def by_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def sign_in(driver: Any, tenant: str, key: str) -> None:
    tenant_input, key_input = by_css(driver, "#tenant-input")[0], by_css(driver, "#key-input")[0]
    tenant_input.clear()
    tenant_input.send_keys(tenant)
    key_input.clear()
    key_input.send_keys(key)
    by_css(driver, "#login-submit")[0].click()


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1360, max(900, min(int(height) + 200, 3000)))  # the whole page, window frame included
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    return path


def test_a_wrong_key_shows_a_clear_error_and_keeps_nothing(browser: Any, served: ServedHistory) -> None:
    started = time.monotonic()
    browser.get(f"{served.url}/ui/?tenant=acme")
    wait_for(browser, lambda d: by_css(d, "#login")[0].is_displayed())
    assert by_css(browser, "#tenant-input")[0].get_attribute("value") == "acme"  # from ?tenant=, not the key
    sign_in(browser, "acme", WRONG_KEY)
    error = wait_for(browser, lambda d: [e for e in by_css(d, "#login-error") if e.is_displayed()])[0]
    assert "The API key was refused (401)" in error.text and "Sign-in failed" in error.text
    assert error.get_attribute("role") == "alert"
    assert browser.execute_script("return sessionStorage.length") == 0
    assert not by_css(browser, "#view")[0].is_displayed()
    sign_in(browser, "testco", served.keys["acme"])  # a real key, of another tenant
    wait_for(browser, lambda d: "another tenant" in by_css(d, "#login-error")[0].text)
    assert "Not allowed (403)" in by_css(browser, "#login-error")[0].text
    assert time.monotonic() - started < 20


def test_the_runs_list_shows_the_demo_run_succeeded_and_only_this_tenants_runs(
    browser: Any, served: ServedHistory, read_only_key: str
) -> None:
    browser.get(f"{served.url}/ui/")
    wait_for(browser, lambda d: by_css(d, "#key-input")[0].is_displayed())
    sign_in(browser, "acme", read_only_key)
    wait_for(browser, lambda d: by_css(d, "#runs-table"))
    row = wait_for(browser, lambda d: by_css(d, f'tr[data-run-id="{served.demo_run}"]'))[0]
    assert "daily_sales" in row.text and "SUCCEEDED" in row.text and "api" in row.text
    assert by_css(browser, f'tr[data-run-id="{served.showcase_run}"]')
    assert served.other_tenant_run not in browser.page_source and "fan_join" not in browser.page_source
    assert by_css(browser, "#who-tenant")[0].text == "acme"
    # the key lives in this tab's sessionStorage only: not in the URL, a cookie or localStorage
    assert browser.execute_script("return sessionStorage.getItem('cloudact.apiKey')") == read_only_key
    assert browser.execute_script("return document.cookie") == ""
    assert browser.execute_script("return localStorage.length") == 0
    assert read_only_key not in browser.current_url
    # the 30-day charts: one per pipeline, drawn as SVG with the numbers said in words
    charts = wait_for(browser, lambda d: by_css(d, "figure.chart-card"))
    assert {c.get_attribute("data-pipeline") for c in charts} == {"daily_sales", "ui_showcase"}  # ui_live not yet
    labels = [c.find_element("css selector", "svg").get_attribute("aria-label") for c in charts]
    assert any("daily_sales" in a and "100 % success" in a for a in labels), labels
    # times in the viewer's timezone, UTC on hover
    created = row.find_element("css selector", "time")
    assert created.get_attribute("title").endswith(" UTC") and created.text
    screenshot(browser, "ui-runs.png")


def test_filters_narrow_the_list(browser: Any, served: ServedHistory) -> None:
    from selenium.webdriver.support.ui import Select

    Select(by_css(browser, "#f-status")[0]).select_by_value("FAILED")
    by_css(browser, "form.filters button[type=submit]")[0].click()
    wait_for(browser, lambda d: "status=FAILED" in d.current_url and len(by_css(d, "#runs-table tbody tr")) == 1)
    assert by_css(browser, "#runs-table tbody tr")[0].get_attribute("data-run-id") == served.showcase_run
    browser.get(f"{served.url}/ui/#/runs?from=2000-01-01&to=2000-01-31")
    wait_for(browser, lambda d: by_css(d, "#runs-empty"))
    browser.get(f"{served.url}/ui/#/runs?pipeline=daily_sales")
    wait_for(
        browser,
        lambda d: [r.get_attribute("data-run-id") for r in by_css(d, "#runs-table tbody tr")] == [served.demo_run],
    )


def test_the_demo_run_page_shows_its_stages_in_the_timeline(browser: Any, served: ServedHistory) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{served.url}/ui/#/runs")
    link = wait_for(browser, lambda d: by_css(d, f'tr[data-run-id="{served.demo_run}"] a'))[0]
    link.send_keys(Keys.ENTER)  # keyboard navigation: the run link is a real link
    wait_for(browser, lambda d: by_css(d, ".gantt .g-row"))
    heading = by_css(browser, "#view h1")[0]
    assert served.demo_run in heading.text and "SUCCEEDED" in heading.text
    assert browser.execute_script("return document.activeElement.tagName") == "H1"  # focus moved to the new view
    rows = by_css(browser, ".gantt .g-row")
    stages = [r.get_attribute("data-stage") for r in rows]
    assert stages == ["load_orders", "revenue_by_region", "revenue_by_product", "daily_summary"]
    assert {r.get_attribute("data-status") for r in rows} == {"SUCCEEDED"}
    assert all("SUCCEEDED" in r.text and "1 attempt" in r.text for r in rows)
    assert len(by_css(browser, ".gantt .g-bar.b-succeeded")) == 4
    assert "5,000 rows" in rows[0].text
    notes = by_css(browser, "#notifications-table tbody tr")
    assert len(notes) == 1 and "sales_team" in notes[0].text and "queued" in notes[0].text
    assert "sent" not in notes[0].text.replace("not sent", "")  # written to the local outbox is not sent
    assert "no data-quality checks" in by_css(browser, "#quality-empty")[0].text
    for time_el in by_css(browser, ".facts time"):
        assert time_el.get_attribute("title").endswith(" UTC")
    shot = screenshot(browser, "ui-run-succeeded.png")
    assert shot.stat().st_size > 20_000


def test_the_run_page_shows_the_first_rows_of_each_stage_output(browser: Any, served: ServedHistory) -> None:
    browser.get(f"{served.url}/ui/#/runs/{served.demo_run}")
    wait_for(browser, lambda d: by_css(d, "#outputs details.output"))
    outputs = by_css(browser, "#outputs details.output")
    assert len(outputs) == 4 and all(o.get_attribute("open") is not None for o in outputs)
    assert (
        "load_orders" in outputs[0].text
        and "acme_sales.orders" in outputs[0].text
        and "5 of 5,000 rows" in outputs[0].text
    )
    head = [th.text.split("\n")[0] for th in by_css(browser, 'table.preview[data-stage="load_orders"] thead th')]
    assert head == ["order_id", "order_date", "region", "product", "amount"]
    assert len(by_css(browser, 'table.preview[data-stage="load_orders"] tbody tr')) == 5
    summary = by_css(browser, 'table.preview[data-stage="daily_summary"] tbody tr')
    assert len(summary) == 1 and "4" in summary[0].text  # four regions
    screenshot(browser, "ui-run-outputs.png")


def test_a_retried_and_skipped_run_shows_attempts_quality_and_notifications(
    browser: Any, served: ServedHistory
) -> None:
    browser.get(f"{served.url}/ui/#/runs/{served.showcase_run}")
    wait_for(browser, lambda d: by_css(d, "#quality-table"))
    extract = by_css(browser, '.g-row[data-stage="extract"]')[0]
    assert "retried" in extract.get_attribute("class") and "3 attempts (2 retries)" in extract.text
    assert len(extract.find_elements("css selector", ".g-bar.b-failed")) == 2
    assert len(extract.find_elements("css selector", ".g-bar.b-succeeded")) == 1
    assert extract.find_elements("css selector", ".g-wait")
    publish = by_css(browser, '.g-row[data-stage="publish"]')[0]
    assert publish.get_attribute("data-status") == "SKIPPED" and "SKIPPED" in publish.text
    assert publish.find_elements("css selector", ".g-mark.m-skipped") and "skipped" in publish.text
    assert "configured to fail" in by_css(browser, '.g-row[data-stage="transform"]')[0].text
    checks = {r.get_attribute("data-check"): r.text for r in by_css(browser, "#quality-table tbody tr")}
    assert set(checks) == {"row_count", "not_null_order_id_region", "accepted_values_region"}
    assert "fail (warning)" in checks["accepted_values_region"] and "1,250 / 5,000" in checks["accepted_values_region"]
    channels = {r.get_attribute("data-channel") for r in by_css(browser, "#notifications-table tbody tr")}
    assert channels == {"data_alerts", "oncall"}
    screenshot(browser, "ui-run-retried-and-skipped.png")


def test_a_live_run_is_drawn_running_and_updates_itself_until_it_ends(browser: Any, served: ServedHistory) -> None:
    started = served.api(
        "POST", "/api/v1/tenants/acme/pipelines/execute", served.keys["acme"], json={"pipeline_id": "ui_live"}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    browser.get(f"{served.url}/ui/#/runs/{run_id}")
    running = wait_for(browser, lambda d: by_css(d, '.g-row[data-stage="long"] .g-bar.b-running'), timeout=15)
    assert running and "RUNNING" in by_css(browser, "#view h1")[0].text
    assert "attempt 1 running" in by_css(browser, '.g-row[data-stage="long"]')[0].text
    assert "still running" in by_css(browser, ".facts")[0].text
    # no reload: the page polls and redraws in place until the run ends
    wait_for(browser, lambda d: "SUCCEEDED" in by_css(d, "#view h1")[0].text, timeout=20)
    assert not by_css(browser, ".g-bar.b-running") and len(by_css(browser, ".g-bar.b-succeeded")) == 2
    assert browser.execute_script("return document.activeElement.tagName") == "H1"  # redraws kept the focus


def test_another_tenants_run_id_is_not_shown(browser: Any, served: ServedHistory) -> None:
    browser.get(f"{served.url}/ui/#/runs/{served.other_tenant_run}")
    error = wait_for(browser, lambda d: by_css(d, "#run-error"))[0]
    assert error.text == f"Tenant acme has no run {served.other_tenant_run}."
    assert not by_css(browser, ".gantt") and not by_css(browser, ".facts")
    assert "fan_join" not in browser.page_source and "testco" not in browser.page_source


def test_the_policy_held_and_nothing_broke_in_the_console(browser: Any) -> None:
    """No CSP or Trusted Types violation and no script error on any page visited above (refused API calls log
    'Failed to load resource' for the 401/403/404 answers the earlier tests provoked on purpose)."""
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
    ]
    assert problems == []


def test_the_printed_link_signs_in_once_and_sign_out_hides_until_signed_in(browser: Any, served: ServedHistory) -> None:
    browser.get("about:blank")
    browser.delete_all_cookies()
    browser.get(f"{served.url}/ui/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{served.url}/ui/?tenant=acme")
    wait_for(browser, lambda d: by_css(d, "#login")[0].is_displayed())
    assert not by_css(browser, "#sign-out")[0].is_displayed()  # nobody is signed in: no "Sign out"
    browser.get(served.signin_link)
    wait_for(browser, lambda d: by_css(d, "#runs-table"))
    assert by_css(browser, "#who-tenant")[0].text == "acme" and by_css(browser, "#sign-out")[0].is_displayed()
    assert "signin" not in browser.current_url  # the token left the address bar at once
    by_css(browser, "#sign-out")[0].click()
    wait_for(browser, lambda d: by_css(d, "#login")[0].is_displayed())
    assert not by_css(browser, "#sign-out")[0].is_displayed()
    browser.get(served.signin_link)  # the same link again: used up
    error = wait_for(browser, lambda d: [e for e in by_css(d, "#login-error") if e.is_displayed()])[0]
    assert "already used or has expired" in error.text, error.text
    assert browser.execute_script("return sessionStorage.getItem('cloudact.apiKey')") is None
