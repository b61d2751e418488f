"""Session-wide test settings: the results store lives in a temporary file, so no test writes ~/.cache."""
import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_DB_DIR = tempfile.mkdtemp(prefix="vaegmm-test-db-")
# set at import, before any test module runs: subprocesses (the CLI, the browser tests' server) inherit it
os.environ["VAEGMM_DB"] = str(Path(_DB_DIR) / "runs.db")
atexit.register(shutil.rmtree, _DB_DIR, True)


@pytest.fixture(scope="session")
def session_db() -> Path:
    """The session's results store (``$VAEGMM_DB``)."""
    return Path(os.environ["VAEGMM_DB"])


@pytest.fixture(scope="module")
def _chromium():
    """One headless Chromium per browser-test module (Debian's; never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from browser_support import launch_chromium

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def browser(_chromium):
    """Chromium, failing the test on any page error or Streamlit console error of any of its pages."""
    from browser_support import PageErrors, WatchedBrowser

    errors = PageErrors()
    yield WatchedBrowser(_chromium, errors)
    errors.check()
