"""The Dagster UI in a real browser: dagster-webserver on loopback, driven by headless Chromium.

Screenshots go to the test's tmp dir, and to $LEROBOT_ASSETS_SCREENSHOTS when set (CI artifacts).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ASSETS = ["raw_episodes", "session_dataset", "lerobot_dataset", "dataset_stats"]
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (make browser)")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = os.environ | {"DAGSTER_HOME": str(dagster_home), "LEROBOT_ASSETS_HOME": str(tmp_path / "home")}
    port = _free_port()
    log = open(tmp_path / "webserver.log", "w")
    # Own process group: SIGINT to the group stops the webserver and its code server cleanly.
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"webserver did not start:\n{(tmp_path / 'webserver.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode is not None


def _location_name() -> str:
    """The code location's name as workspace.yaml gives it (the module name when it gives none)."""
    import yaml

    entry = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"][0]
    target = next(iter(entry.values()))
    return target.get("location_name") or target.get("module_name") or Path(target["relative_path"]).stem


def _save(shot: Path) -> None:
    target = os.environ.get("LEROBOT_ASSETS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


def test_asset_graph_in_browser(webserver: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            # Skip the "Join the Dagster community" pop-up.
            context.add_init_script("localStorage.setItem('communityNux', JSON.stringify('1'))")
            page = context.new_page()

            page.goto(f"{webserver}/assets", wait_until="domcontentloaded")
            for name in ASSETS:
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            shot = tmp_path / "ui_assets.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            _save(shot)

            page.goto(f"{webserver}/locations/{_location_name()}/asset-groups/lerobot", wait_until="domcontentloaded")
            for name in ASSETS:
                page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
            page.wait_for_timeout(1500)  # let the graph layout settle before the screenshot
            shot = tmp_path / "ui_asset_graph.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            _save(shot)
            body = page.inner_text("body")
            assert all(name in body for name in ASSETS)
        finally:
            browser.close()
