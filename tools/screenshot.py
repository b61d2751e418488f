"""Take the README's screenshot of a finished run in a real browser (a tool for the docs, not part of the app).

    python tools/screenshot.py --preset quick-demo --out docs/screenshot.png

Starts `streamlit run app.py` on a free port and opens it in Debian's Chromium (Playwright, never `playwright
install`; the suite's tests/browser_support.py does both), presses Start, waits for the finished state and saves a screenshot of the whole page; with
``--explorer`` also one of the Latent explorer after clicking a point of the scatter. With ``--live`` it first
saves the top of the page in the middle of a late VAE update (``--live-iteration``), in the LDA view coloured by
GMM class (the codes
moving toward their class means); with ``--gif-frame`` it downloads the run's animated GIF through its button and
saves one frame of it (``--gif`` keeps the whole GIF).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import STATUS, launch_chromium, streamlit_server  # noqa: E402


def _full(page, path: str, width: int) -> None:
    height = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
        return m ? m.scrollHeight : document.body.scrollHeight; }""")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(1500)
    page.screenshot(path=path, full_page=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick-demo")
    ap.add_argument("--set", nargs="*", default=[], help="extra settings as key=value (query parameters)")
    ap.add_argument("--out", default="docs/screenshot.png")
    ap.add_argument("--explorer", default="", help="also save the Latent explorer here")
    ap.add_argument("--live", default="", help="also save the page during the last VAE update (LDA, GMM class)")
    ap.add_argument("--live-iteration", type=int, default=3, help="the first iteration --live may catch")
    ap.add_argument("--gif-frame", default="", help="also save a frame of the downloaded GIF here (PNG)")
    ap.add_argument("--gif", default="", help="also keep the downloaded GIF here")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run to finish")
    a = ap.parse_args(argv)
    params = {"preset": a.preset, **dict(kv.split("=", 1) for kv in a.set)}
    from playwright.sync_api import sync_playwright

    with streamlit_server(log_name="screenshot.log") as (url, _proc):
        with sync_playwright() as p:
            browser = launch_chromium(p)  # $VAEGMM_CHROMIUM, default /usr/bin/chromium
            page = browser.new_page(viewport={"width": a.width, "height": 1000})
            page.goto(f"{url}/?{urlencode(params)}")
            start = page.locator('.st-key-btn_start button').first
            start.wait_for(timeout=60000)
            page.wait_for_timeout(2000)
            t0 = time.monotonic()
            start.click()
            if a.live:
                # choose the view first, then catch a VAE update from iteration --live-iteration on, past 40 %
                page.locator('[data-testid="stButtonGroup"] button', has_text="LDA").first.wait_for(timeout=120000)
                page.locator('[data-testid="stButtonGroup"] button', has_text="LDA").first.click()
                page.locator('[data-testid="stButtonGroup"] button', has_text="GMM class").first.click()
                page.wait_for_function("""(it) => { const m = document.body.innerText.match(
                        /iteration (\\d+): VAE epoch (\\d+) of (\\d+)/);
                    return m && +m[1] >= it && +m[2] >= 0.4 * +m[3]; }""", arg=a.live_iteration,
                                       timeout=a.timeout * 1000, polling=200)
                page.set_viewport_size({"width": a.width, "height": 1250})
                page.wait_for_timeout(800)
                page.screenshot(path=a.live)
                print(f"saved {a.live}")
                for label in ("PCA", "digit"):
                    page.locator('[data-testid="stButtonGroup"] button', has_text=label).first.click()
            page.wait_for_function(f"""() => {{ const el = document.querySelector('{STATUS}');
                return el && ['finished', 'failed', 'stopped'].includes(el.getAttribute('data-state')); }}""",
                                   timeout=a.timeout * 1000, polling=500)
            print(f"run ended after {time.monotonic() - t0:.1f} s: {page.inner_text(STATUS)}")
            page.wait_for_timeout(2000)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            _full(page, a.out, a.width)
            print(f"saved {a.out}")
            if a.gif_frame or a.gif:
                with page.expect_download(timeout=300000) as dl:
                    page.locator('[data-testid="stDownloadButton"] button', has_text="GIF").first.click()
                gif = Path(a.gif or "/tmp/vaegmm_screenshot.gif")
                dl.value.save_as(str(gif))
                from PIL import Image

                with Image.open(gif) as im:
                    n = im.n_frames
                    im.seek(int(n * 0.85))  # late in the last update: classes tight around their means
                    if a.gif_frame:
                        im.convert("RGB").save(a.gif_frame, optimize=True)
                print(f"GIF: {n} frames, {gif.stat().st_size / 1e6:.2f} MB; frame saved to {a.gif_frame}")
            if a.explorer:
                page.set_viewport_size({"width": a.width, "height": 1000})
                page.locator('[data-testid="stPageLink"] a', has_text="Latent explorer").first.click()
                page.wait_for_selector(".js-plotly-plot", timeout=30000)
                page.wait_for_timeout(2500)
                # click a point of the first digit trace (its pixel position from Plotly's own axes)
                xy = page.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot');
                    const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                    const r = gd.getBoundingClientRect(), i = Math.floor(t.x.length / 2);
                    return [r.left + xa._offset + xa.l2p(t.x[i]), r.top + ya._offset + ya.l2p(t.y[i]),
                            t.customdata[i][0]]; }""")
                page.mouse.click(xy[0], xy[1])
                page.wait_for_timeout(3000)
                print(f"clicked image {xy[2]}; index field now {page.locator('input[type=number]').first.input_value()}")
                _full(page, a.explorer, a.width)
                print(f"saved {a.explorer}")
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
