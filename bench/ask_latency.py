"""From the end of a stroke to the answer on the page (issue 25: target p95 under 300 ms of server time).

Starts `streamlit run app.py`, trains one run on the live page, then draws ``--drawings`` different 7s on its canvas
(after a warm-up drawing), pressing Clear between them. Per drawing, from the page's WebSocket frames: server = the
rerun request carrying the drawing to the first received message holding the star (not the last: the polling
fragment may resend it a second later); browser = mouse released to the star, the bars and the 7 pictures shown;
sent = mouse released to that request. Prints each drawing's ms and p50 / p95 as JSON; run it alone (exclusive lock).

    python bench/ask_latency.py [--n 2000] [--drawings 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import launch_chromium, streamlit_server  # noqa: E402
from test_browser import button, wait_state  # noqa: E402
from test_browser_ask import ANSWER_JS, stroke  # noqa: E402

SHOWN = f"() => {{ const a = ({ANSWER_JS})(); return a.star && a.bars >= 2 && a.pictures === 7; }}"
GONE = f"() => !({ANSWER_JS})().star && document.body.innerText.includes('Draw a digit in the box')"


def seven(i: int) -> list:
    """The i-th 7: the same shape, its foot moved a little each time (so every drawing is a new question)."""
    return [(0.22 + 0.01 * (i % 5), 0.2), (0.75, 0.2 + 0.01 * (i % 3)), (0.35 + 0.02 * (i % 7), 0.85)]


class Frames:
    """The page's WebSocket frames with the time each was sent or received."""

    def __init__(self, page) -> None:
        self.log: list[tuple[float, str, bytes]] = []
        page.on("websocket", lambda ws: (ws.on("framesent", lambda f: self._add("sent", f)),
                                         ws.on("framereceived", lambda f: self._add("received", f))))

    def _add(self, way: str, payload) -> None:
        self.log.append((time.monotonic(), way, payload if isinstance(payload, bytes) else payload.encode()))

    def times(self, released: float) -> tuple[float, float]:
        """``(ms from the mouse's release to the request with the drawing, ms from that request to the first frame
        holding the star picture)``."""
        sent = next(t for t, way, p in self.log if t >= released and way == "sent" and b"data:image/png" in p)
        got = next(t for t, way, p in self.log if t >= sent and way == "received" and b'"star"' in p)
        return (sent - released) * 1000, (got - sent) * 1000


def one_drawing(page, frames: Frames, i: int) -> dict:
    canvas = page.locator("canvas.upper-canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    frames.log.clear()
    stroke(page, box, seven(i))
    released = time.monotonic()
    page.wait_for_function(SHOWN, timeout=30000, polling="raf")
    shown = (time.monotonic() - released) * 1000
    page.wait_for_timeout(1000)  # the answer's last messages (and a polling rerun or two) arrive
    sent, server = frames.times(released)
    out = {"browser_ms": round(shown, 1), "server_ms": round(server, 1), "sent_ms": round(sent, 1)}
    button(page, "Clear").click()
    try:
        page.wait_for_function(GONE, timeout=30000)
    except Exception:
        page.screenshot(path=str(ROOT / "artifacts" / "browser" / "ask_latency_not_cleared.png"), full_page=True)
        raise RuntimeError(f"drawing {i}: Clear did not empty the canvas: {page.evaluate(ANSWER_JS)}") from None
    page.wait_for_timeout(300)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--drawings", type=int, default=20)
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    run = {"n": a.n, "latent": 12, "epochs": 10, "batch": 250, "iterations": 2, "codes": "mean", "gmm": "em"}
    env = {"VAEGMM_DB": str(Path(tempfile.mkdtemp(prefix="vaegmm-ask-")) / "runs.db"), "VAEGMM_REUSE": "off",
           "VAEGMM_MAX_RUN_MINUTES": "0"}
    with streamlit_server(env, log_name="ask_latency.log") as (url, _proc), sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            frames = Frames(page)
            page.goto(f"{url}/?{urlencode(run)}")
            button(page, "Start").wait_for(timeout=60000)
            button(page, "Start").click()
            wait_state(page, "finished", 600)
            page.locator("canvas.upper-canvas").first.wait_for(timeout=30000)
            one_drawing(page, frames, 99)  # warm-up
            rows = [one_drawing(page, frames, i) for i in range(a.drawings)]
        finally:
            browser.close()
    out = {"run": run, "drawings": len(rows)}
    for k in ("server_ms", "browser_ms", "sent_ms"):
        v = sorted(r[k] for r in rows)
        out[k] = {"each": [r[k] for r in rows], "p50": round(statistics.median(v), 1),
                  "p95": round(v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))], 1)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
