"""Headless Chromium (Debian's, through Selenium and its chromedriver) for the web app tests; no browser download."""

from __future__ import annotations

import os
import shutil
import socket

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> tuple[str | None, str | None, str]:
    """(chromium path, chromedriver path, why not) from $BLIPDIFF_CHROMIUM/$BLIPDIFF_CHROMEDRIVER or the PATH."""
    browser = os.environ.get("BLIPDIFF_CHROMIUM") or next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = os.environ.get("BLIPDIFF_CHROMEDRIVER") or shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return browser, driver, "selenium is not installed (pip install 'blipdiff_plugins[ui]')"
    if browser is None:
        return None, driver, "no Chromium found (apt-get install chromium chromium-driver, or set BLIPDIFF_CHROMIUM)"
    if driver is None:
        return browser, None, "no chromedriver found (apt-get install chromium-driver, or set BLIPDIFF_CHROMEDRIVER)"
    return browser, driver, ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_driver(browser: str, driver: str, download_dir: str):
    """A headless Chromium session with downloads going to ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1500"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": download_dir, "download.prompt_for_download": False, "safebrowsing.enabled": False}
    )
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.set_page_load_timeout(60)
    return session
