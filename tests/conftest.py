"""Session-wide test settings: the results store lives in a temporary file, so no test writes ~/.cache; and what
the browser tests share.

The browser tests share one Playwright, one headless Chromium (another at nice 5 for the classroom) and one
``streamlit run app.py`` with 2 training slots and a 3 s reconnect grace period (``app_server``). Each is started
by the first test that asks for it and kept while the tests that follow ask for it too, then ended at once
(``pytest_runtest_teardown``): Playwright's sync API cannot run beside another Playwright or ``asyncio.run`` in
the same thread, and an idle server or browser must not sit beside the classroom test's measurements. So that the
sharing holds, the browser tests run after the others, those on the shared server first
(``pytest_collection_modifyitems``); under pytest-xdist (pytest.ini) each of two workers runs one group of them.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

_DB_DIR = tempfile.mkdtemp(prefix="vaegmm-test-db-")
# set at import, before any test module runs: subprocesses (the CLI, the browser tests' server) inherit it
os.environ["VAEGMM_DB"] = str(Path(_DB_DIR) / "runs.db")
# the suite's many identical tiny runs must train, not join or replay each other (issue 18's reuse); the tests of
# the reuse turn it on for themselves (tests/test_budget_reuse.py, test_app_reuse.py, test_browser_reuse.py)
os.environ.setdefault("VAEGMM_REUSE", "off")
atexit.register(shutil.rmtree, _DB_DIR, True)


class KeptWhileUsed:
    """Resources by fixture name, each entered (a context manager) on first use and exited when the next test does
    not use that fixture; exited in the reverse order of entering (a browser before its Playwright)."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[contextlib.ExitStack, object]] = {}

    def get(self, name: str, make):
        """The open resource ``name``, or ``make()`` (a context manager) entered now."""
        if name not in self._open:
            stack = contextlib.ExitStack()
            value = stack.enter_context(make())
            self._open[name] = (stack, value)
        return self._open[name][1]

    def release_unused(self, keep: set[str]) -> None:
        for name in reversed(list(self._open)):
            if name not in keep:
                stack, _ = self._open.pop(name)
                stack.close()


_KEPT = KeptWhileUsed()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(session, config, items):
    """The browser tests after the others, those on the shared ``app_server`` first; order kept otherwise. With
    pytest-xdist (``-n auto --dist loadgroup`` in pytest.ini) the browser tests form two groups, each run by one
    worker in this order (groups are handed out first, the largest first): those on the shared ``app_server``
    and those with servers of their own; the workers share the other tests."""
    items.sort(key=lambda item: (item.get_closest_marker("browser") is not None,
                                 "app_server" not in getattr(item, "fixturenames", ())))
    for item in items:
        if item.get_closest_marker("browser") is not None:
            shared = "app_server" in getattr(item, "fixturenames", ())
            item.add_marker(pytest.mark.xdist_group("browser-app" if shared else "browser-own"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # the test's own fixtures are finalized first (its pages, its error check)
    _KEPT.release_unused(set(getattr(nextitem, "fixturenames", ())) if nextitem is not None else set())


def pytest_sessionfinish(session, exitstatus):
    _KEPT.release_unused(set())  # also after an interrupted run: the server runs in a process group of its own


@pytest.fixture(autouse=True)
def _calibration_ends_with_its_test():
    """The server's one-time speed calibration (:func:`vaegmm.sweeps.estimate.server_calibration`: a thread and a
    worker process for a few seconds) ends inside the test whose page started it (the first cost estimate of a
    page in this process), so it cannot end during a later test on the same pytest-xdist worker: the soak test
    counts this process's threads and saw it vanish mid-count (tests/test_robustness.py)."""
    yield
    estimate = sys.modules.get("vaegmm.sweeps.estimate")  # not imported: no calibration can have started
    if estimate is not None:
        assert estimate.server_calibration().join(120), "the server's calibration run did not end"


@pytest.fixture(scope="session")
def session_db() -> Path:
    """The session's results store (``$VAEGMM_DB``)."""
    return Path(os.environ["VAEGMM_DB"])


@pytest.fixture
def _playwright():
    """The shared Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    return _KEPT.get("_playwright", sync_playwright)


@contextlib.contextmanager
def _launched(playwright, nice: int = 0):
    from browser_support import launch_chromium

    b = launch_chromium(playwright, nice=nice)
    try:
        yield b
    finally:
        with contextlib.suppress(Exception):  # a crashed browser must not hide the test's own result
            b.close()


@pytest.fixture
def _chromium(_playwright):
    """The shared headless Chromium (Debian's; never `playwright install`)."""
    return _KEPT.get("_chromium", lambda: _launched(_playwright))


@pytest.fixture
def niced_chromium(_playwright):
    """The shared headless Chromium at nice 5: it stands in for the students' own laptops, so on this one machine
    it yields to the server (tests/test_classroom.py)."""
    return _KEPT.get("niced_chromium", lambda: _launched(_playwright, nice=5))


@pytest.fixture
def browser(_chromium):
    """Chromium, failing the test on any page error or Streamlit console error of any of its pages."""
    from browser_support import PageErrors, WatchedBrowser

    errors = PageErrors()
    watched = WatchedBrowser(_chromium, errors)
    yield watched
    try:
        errors.check()
    finally:
        watched.close_contexts()  # what a failed test left open (the browser outlives the test)


@pytest.fixture
def app_server() -> str:
    """The URL of ``streamlit run app.py`` with 2 training slots and a 3 s reconnect grace period, shared by the
    browser tests that need no settings of their own (tests/test_browser.py, test_browser_views.py); its whole
    process group is ended after the last of them."""
    return _KEPT.get("app_server", _app_server_url)


@contextlib.contextmanager
def _app_server_url():
    from browser_support import APP_ENV, streamlit_server

    with streamlit_server(APP_ENV, log_name="server.log") as (url, _proc):
        yield url
