"""The dashboard in a real browser: Debian's headless Chromium driven by Selenium through
chromedriver. `labkit up` runs as a process; a simulated phone boots against it; the page, never
reloaded, shows that phone go from waiting to provisioned. A screenshot lands in the test's tmp
folder (LABKIT_DASHBOARD_SCREENSHOT=PATH also copies it there, e.g. docs/dashboard.png)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labkit.inventory.load import load
from labkit.plan.build import build_plan
from tests.conftest import require_module, require_tool
from tests.helpers import labkit
from tests.interop.lab_process import LabProcess, start_lab_process

CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1600,1000")
MAC = next(iter(build_plan(load(None)).phones))  # the default lab's first phone


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    require_module("selenium")
    chromium = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabProcess]:
    # a fault rule in force that no phone of this test meets (the dashboard lists it)
    process = start_lab_process(tmp_path, None, "--quiet", "--fault",
                                '{name: demo-503, match: {path: "/nothing/*"}, http: {status: 503}}')
    try:
        yield process
    finally:
        process.stop()


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll `condition()` until it is truthy (bounded in time), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"the dashboard never showed {what}")


def row_state(driver: Any) -> str | None:
    return driver.execute_script(
        "const row = document.getElementById(arguments[0]); return row ? row.dataset.state : null;",
        "phone-" + MAC.replace(":", ""))


def test_a_simulated_phone_goes_live_on_the_dashboard(browser: Any, lab: LabProcess, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{lab.port('admin')}/"
    banner = "\n".join(lab.banner)
    assert f"dashboard {url}" in banner and f"{url}metrics" in banner
    browser.get(url)
    assert wait_until(lambda: row_state(browser), f"{MAC} listed") == "waiting"
    wait_until(lambda: browser.execute_script("return document.getElementById('live').className") == "on",
               "the live stream connected")
    browser.execute_script("window.labkitMarker = 'same page';")  # gone if the page were reloaded
    booted = labkit("simulate", "--port-offset", str(lab.offset), "--phone", MAC, "--state", str(lab.state),
                    cwd=tmp_path)
    assert booted.returncode == 0, booted.stdout + booted.stderr
    wait_until(lambda: row_state(browser) == "provisioned", f"{MAC} provisioned")
    assert browser.execute_script("return window.labkitMarker") == "same page"
    row = browser.find_element("id", "phone-" + MAC.replace(":", ""))
    assert "provisioned" in row.text and ".loads" in row.text  # its state and the firmware it fetched
    counters = wait_until(lambda: (text := browser.find_element("id", "services").text) and "dhcp" in text
                          and text, "service counters")
    assert "http" in counters or "tftp" in counters
    row.click()  # its timeline
    timeline = wait_until(lambda: browser.find_element("id", "timeline").text, "the phone's timeline")
    assert "discover" in timeline and "request" in timeline
    assert "demo-503" in browser.find_element("id", "faults").text
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1600, min(int(height) + 120, 4000))  # the whole page in one picture
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if target := os.environ.get("LABKIT_DASHBOARD_SCREENSHOT"):
        shutil.copyfile(shot, target)
