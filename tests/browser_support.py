"""Shared helpers of the browser tests: a real `streamlit run app.py` on a free port, Debian's Chromium through
Playwright (never `playwright install`), and a collector that fails a test on any page error or Streamlit
frontend console error, so a white page ("Cannot set a node at a delta path") can never pass silently.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("VAEGMM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
STATUS = '[data-testid="vaegmm-status"]'

# the shared app server of the browser tests (conftest's ``app_server``): 2 training slots, and the seconds a closed
# tab's runs keep their slot
APP_GRACE = 8  # long enough that a third tab's Start lands inside it on a busy 2-core machine (3 s did not)
# no run-time budget (VAEGMM_MAX_RUN_MINUTES=0): the page's estimate uses the rate the store measured, and a classic
# run measured while the suite's other worker trains too was estimated above the default 10 minutes and refused
# (its Start disabled); the budget's own browser test runs a server of its own (tests/test_browser_reuse.py)
APP_ENV = {"VAEGMM_MAX_RUNS": "2", "VAEGMM_RECONNECT_GRACE": str(APP_GRACE), "VAEGMM_MAX_RUN_MINUTES": "0"}

# console messages that are not the app's fault: Chromium's own offline noise
_BENIGN = ("Failed to load resource", "net::ERR_", "favicon", "Permissions-Policy", "WebGL", "GPU stall",
           "GroupMarkerNotSet", "Automatic fallback to software WebGL")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"streamlit did not start; see {log_path}")
        time.sleep(0.3)


@contextlib.contextmanager
def streamlit_server(env: Optional[dict] = None, log_name: str = "server.log", port: Optional[int] = None,
                     script: str = "app.py", root: Optional[Path] = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """``(url, process)`` of ``streamlit run app.py`` (in ``root``, default this checkout) with ``env`` added; its
    whole process group is ended after."""
    port = port or free_port()
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / log_name
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=root or ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log_path)
        yield url, proc
    finally:
        stop_process_group(proc)
        log.close()


def stop_process_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(5)


def launch_chromium(playwright, nice: int = 0):
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        message = f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    executable = CHROMIUM
    if nice:  # the browser stands in for the students' own laptops: on this one machine it yields to the server
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        wrapper = ARTIFACTS / f"chromium-nice{int(nice)}.sh"
        wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} "{shutil.which(CHROMIUM) or CHROMIUM}" "$@"\n')
        wrapper.chmod(0o755)
        executable = str(wrapper)
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


class PageErrors:
    """Collects ``pageerror`` events and console errors of every page it watches."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page, name: str = "") -> None:
        tag = f"[{name}] " if name else ""
        page.on("pageerror", lambda exc: self.errors.append(f"{tag}pageerror: {exc}"))

        def on_console(msg):
            if msg.type == "error" and not any(b in msg.text for b in _BENIGN):
                self.errors.append(f"{tag}console error: {msg.text}")

        page.on("console", on_console)

    def check(self) -> None:
        assert not self.errors, "frontend errors:\n" + "\n".join(self.errors[:20])


class WatchedBrowser:
    """A Playwright browser whose every page (``new_page`` or ``new_context().new_page()``) reports its errors
    to ``errors``; everything else is the browser's own."""

    def __init__(self, browser, errors: PageErrors) -> None:
        self._browser = browser
        self.errors = errors
        self._contexts: list = []  # every context it made (a page of its own has one too)

    def new_page(self, **kwargs):
        page = self._browser.new_page(**kwargs)
        self.errors.watch(page)
        self._contexts.append(page.context)
        return page

    def new_context(self, **kwargs):
        ctx = self._browser.new_context(**kwargs)
        ctx.on("page", lambda page: self.errors.watch(page))
        self._contexts.append(ctx)
        return ctx

    def close_contexts(self) -> None:
        """Close every context (and page) it made that is still open: the browser is shared with later tests,
        whose servers a failed test's pages must not keep polling."""
        for ctx in self._contexts:
            with contextlib.suppress(Exception):  # already closed
                ctx.close()
        self._contexts.clear()

    def __getattr__(self, name):
        return getattr(self._browser, name)


# Every Plotly chart on the page: layout.meta names it; traces carry meta "points" / "means" / "metric"; ``n`` is a
# trace's number of points (numpy arrays reach the browser as base64 "bdata", which plotly.js decodes itself).
CHARTS_JS = """() => {
    const size = {i1: 1, u1: 1, i2: 2, u2: 2, i4: 4, u4: 4, f4: 4, f8: 8};
    const len = v => !v ? 0 : (v.length !== undefined ? v.length
        : (v.bdata ? atob(v.bdata).length / (size[v.dtype] || 1) : 0));
    return Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
        meta: el.layout ? el.layout.meta : null,
        traces: (el.data || []).map(t => ({meta: t.meta, name: t.name, n: len(t.x)}))}));
}"""


def wait_for_chart(page, meta: str, points: int, timeout: float = 15.0) -> list[dict]:
    """Wait until a chart named ``meta`` has a trace with ``points`` points; returns every chart on the page."""
    deadline = time.monotonic() + timeout
    while True:
        found = page.evaluate(CHARTS_JS)
        if any(c["meta"] == meta and any(t["n"] == points for t in c["traces"]) for c in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {meta!r} chart with {points} points after {timeout} s: {found}")
        page.wait_for_timeout(100)


class TcpRelay:
    """A TCP relay from ``127.0.0.1:<port>`` to ``127.0.0.1:<target>``, whose :meth:`cut` closes every
    connection and refuses new ones for a while: a real network blip (Playwright's offline mode leaves an open
    websocket alive)."""

    def __init__(self, target: int) -> None:
        import threading

        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._socks: set = set()
        self._listener = None
        self._open = threading.Event()
        self._closed = False
        self._listen()

    def _listen(self) -> None:
        import threading

        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls) -> None:
        import threading

        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._socks -= {src, dst}

    def cut(self, seconds: float) -> None:
        """Close the listener and every open connection; listen again after ``seconds``."""
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        time.sleep(seconds)
        self._listen()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in list(self._socks):
                s.close()


def no_exceptions(page) -> None:
    """No Streamlit exception box on the page."""
    assert page.query_selector('[data-testid="stException"]') is None, page.inner_text('[data-testid="stException"]')


def shoot(page, name: str, settle_ms: int = 700) -> None:
    """A screenshot of the whole app into ARTIFACTS: Streamlit scrolls inside its main block, so grow the viewport
    to fit, let the charts redraw for ``settle_ms``, and put the viewport back."""
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]') ||
        document.querySelector('section.main'); return m ? m.scrollHeight : document.body.scrollHeight; }""")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(settle_ms)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.set_viewport_size(size)
