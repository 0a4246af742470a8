"""Debian's headless Chromium driven by selenium through the system chromedriver (no browser
downloads): used by the viewer tests and `benchmarks/viewer_load.py`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        if driver.service.process.poll() is None:  # not killed by `kill`
            driver.quit()


def kill(driver: webdriver.Chrome) -> None:
    """SIGKILL chromedriver and every Chromium process under it, by PID: the browser crashes."""
    root = psutil.Process(driver.service.process.pid)
    processes = [*root.children(recursive=True), root]
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(processes, timeout=10)


def open_page(driver: webdriver.Chrome, page: Path, timeout: float = 60) -> None:
    """Load the page and wait until its script has rendered the list (`body[data-ready=1]`)."""
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    )
