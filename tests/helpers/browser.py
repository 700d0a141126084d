"""Headless Debian Chromium driven by chromedriver (Selenium), for the tests that use the UI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("OPENPOOL_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("OPENPOOL_CHROMEDRIVER", "/usr/bin/chromedriver")


def browser(user_data: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.access(path, os.X_OK), (
            f"{path} is missing: install Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; .ci/run does it)"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={user_data}",
        "--window-size=1440,1000",
    ):
        opts.add_argument(flag)
    service = Service(
        executable_path=CHROMEDRIVER, log_output=str(user_data.parent / "chromedriver.log")
    )
    return webdriver.Chrome(service=service, options=opts)


def wait(driver: Any, css: str, timeout: float = 60, xpath: bool = False) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.XPATH if xpath else By.CSS_SELECTOR, css))
    )


def full_page_screenshot(driver: Any, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, min(max(int(height) + 120, 800), 6000))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 20_000  # a real rendering, not a blank page


def sign_in(driver: Any, page: str, user: str, password: str) -> None:
    """Open ``page``; signed out, Airflow sends the browser to its login page, and back."""
    from selenium.webdriver.common.by import By

    driver.get(page)
    wait(driver, "input[name=username]").send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
