"""The dashboards end to end in real headless Chromium (Debian's package, driven by Playwright).

`muster dashboard` serves the app against a seeded server; the browser signs in, opens every page
(a screenshot of each lands in tests/artefacts/), registers an unregistered agent from Inventory
and sees it leave the unregistered list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.dashboards_seed import admin_token, api, seeded_server
from tests.ports import free_port

CHROMIUM = "/usr/bin/chromium"
ARTEFACTS = Path(__file__).parent / "artefacts"
PAGES = ["Overview", "Spend", "Inventory", "Policy", "Traces", "Alerts", "Registry", "Account"]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing: ./dev test installs it"
)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    server = seeded_server(tmp_path_factory.mktemp("browser") / "data")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dashboard(seeded, tmp_path_factory):
    """`muster dashboard` as a subprocess beside the seeded server, until the module ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSTER_")}
    env |= {"MUSTER_DATA_DIR": str(seeded.server.settings.data_dir), "MUSTER_DASHBOARD_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "muster", "dashboard"],
        env=env,
        cwd=tmp_path_factory.mktemp("cwd"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the test stops streamlit and anything it started
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, process)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(30)


def _wait_until_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"muster dashboard exited: {process.stdout.read().decode()}")
        try:
            if httpx.get(url + "/_stcore/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the dashboards did not start")


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1800},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def settled(page) -> None:
    """Wait until Streamlit has finished running the script (its status widget goes away)."""
    running = page.locator('[data-testid="stStatusWidget"], [data-testid="stSpinner"]')
    quiet = 0
    for _ in range(600):  # the widget shows only after a moment: wait for it to stay away a while
        quiet = quiet + 1 if running.count() == 0 else 0
        if quiet >= 6:
            return
        page.wait_for_timeout(200)
    raise AssertionError("the page kept running")


def open_page(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).first.click()
    heading = "Muster" if title == "Account" else title
    page.get_by_role("heading", name=heading, exact=True).first.wait_for(timeout=120_000)
    settled(page)


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def unregistered(seeded) -> list[dict]:
    return [r for r in api(seeded, "GET", "/api/v1/inventory").json() if r["match_status"] == "unregistered"]


def selected(page, label: str) -> str:
    return page.get_by_role("combobox", name=label).input_value()


def test_sign_in_open_every_page_and_register_an_unregistered_agent(seeded, dashboard, page):
    ARTEFACTS.mkdir(exist_ok=True)
    page.goto(dashboard)
    page.get_by_label("API token").fill(admin_token(seeded))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Overview", exact=True).wait_for(timeout=120_000)
    settled(page)
    assert admin_token(seeded) not in page.url  # the token never enters the URL
    assert "from=" in page.url  # the shared filters do, so a view can be linked
    for title in PAGES:
        open_page(page, title)
        assert not page.locator('[data-testid="stException"]').count(), title
        page.screenshot(path=str(ARTEFACTS / f"{title.lower()}.png"), full_page=True)

    open_page(page, "Inventory")
    before = unregistered(seeded)
    identity = before[0]["observed_identity"]
    assert selected(page, "Unregistered identity") == identity
    assert metric(page, "Unregistered identities") == str(len(before))
    page.get_by_label("Owner (accountable person)").fill("e2e.owner@example.com")
    page.get_by_role("button", name="Register agent").click()
    page.locator('[data-testid="stAlert"]', has_text="Registered").wait_for(timeout=180_000)
    settled(page)
    page.screenshot(path=str(ARTEFACTS / "inventory-after-register.png"), full_page=True)

    after = unregistered(seeded)
    assert identity not in [r["observed_identity"] for r in after]
    assert len(after) < len(before)
    assert metric(page, "Unregistered identities") == str(len(after))
    assert selected(page, "Unregistered identity") != identity


def test_artefacts_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(ARTEFACTS / "overview.png")], cwd=Path(__file__).parent, check=False
    )
    assert shutil.which("git") is None or ignored.returncode == 0
