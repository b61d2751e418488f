// The follower's live view (dashboard/follow/view.py): frames from the run's WebSocket, drawn on canvases. When the
// run has ended (its last frame), or this server does not follow it (close code 4404), the "ended" trigger reruns
// the page, which then is the saved run's page: no script runs at all while the run trains.
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const root = parentElement, $ = id => root.querySelector("#" + id);
  const wrap = $("wrap"), sc = $("scatter"), ac = $("acc"), legend = $("legend");
  const COLOURS = data.colours, STATE_COLOURS = data.stateColours;
  let last = null, frames = 0, ws = null, wait = 500, gone = false, timer = null;
  legend.replaceChildren();
  COLOURS.forEach((c, d) => { const s = document.createElement("span"); s.style.setProperty("--c", c);
                              s.textContent = "digit " + d; legend.appendChild(s); });

  function sized(canvas) {
    const r = canvas.getBoundingClientRect(), k = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(r.width * k)), h = Math.max(1, Math.round(r.height * k));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext("2d"); g.setTransform(k, 0, 0, k, 0, 0); g.clearRect(0, 0, r.width, r.height);
    return [g, r.width, r.height];
  }
  function drawScatter(p) {
    const [g, w, h] = sized(sc);
    if (!p) { g.fillStyle = "#888"; g.font = "14px sans-serif";
              g.fillText("iteration 0 appears here as soon as the run starts", 10, 24); return; }
    const [x0, x1, y0, y1] = p.range, m = 6, rad = w < 500 ? 1.6 : 2.2;
    const sx = (w - 2 * m) / (x1 - x0), sy = (h - 2 * m) / (y1 - y0);
    for (let i = 0; i < p.x.length; i++) {
      g.fillStyle = COLOURS[p.label[i] % COLOURS.length];
      g.fillRect(m + (p.x[i] - x0) * sx - rad, h - m - (p.y[i] - y0) * sy - rad, 2 * rad, 2 * rad);
    }
  }
  function drawAccuracy(acc) {
    const [g, w, h] = sized(ac), l = 34, b = 18, t = 16;
    g.fillStyle = "#555"; g.font = "12px sans-serif"; g.fillText("accuracy per iteration", l, 12);
    g.strokeStyle = "#ddd"; g.beginPath();
    [0, 0.5, 1].forEach(v => { const y = h - b - v * (h - b - t); g.moveTo(l, y); g.lineTo(w - 6, y);
                               g.fillText(v.toFixed(1), 4, y + 4); });
    g.stroke();
    if (!acc.length) return;
    const n = Math.max(1, acc[acc.length - 1][0]), X = i => l + (w - l - 10) * i / n;
    g.strokeStyle = "#1f77b4"; g.lineWidth = 2; g.beginPath();
    acc.forEach(([i, a], k) => { const y = h - b - a * (h - b - t); k ? g.lineTo(X(i), y) : g.moveTo(X(i), y); });
    g.stroke(); g.fillStyle = "#1f77b4";
    acc.forEach(([i, a]) => { g.beginPath(); g.arc(X(i), h - b - a * (h - b - t), 3, 0, 7); g.fill(); });
    const [li, la] = acc[acc.length - 1]; g.fillStyle = "#555";
    g.fillText("iteration " + li + ": " + la.toFixed(3), Math.max(l, w - 150), h - 4);
  }
  function show(f) {
    last = f; frames += 1;
    const badge = $("badge");
    badge.textContent = f.state; badge.style.background = STATE_COLOURS[f.state] || "#888";
    $("stext").textContent = f.status;
    $("fill").style.width = (100 * f.progress[0]).toFixed(1) + "%";
    $("ptext").textContent = f.progress[1];
    $("title").textContent = f.picture ? f.picture.title : "";
    $("note").textContent = f.terminal
      ? (f.message ? f.state + ": " + f.message + ". " : "") + "The finished run's panels open now."
      : "Live and read-only: this page follows the run as it trains.";
    wrap.dataset.state = f.state; wrap.dataset.frames = String(frames);
    wrap.dataset.picture = f.picture ? f.picture.title + " | " + f.picture.x.slice(0, 5).join(",") : "";
    wrap.dataset.status = f.status;
    drawScatter(f.picture); drawAccuracy(f.accuracy);
  }
  function ended() {
    if (gone) return;
    gone = true;
    setTriggerValue("ended", true);  // the page reruns once: the saved run's page
  }
  // a WebSocket, not an EventSource: a browser holds at most six HTTP/1.1 streams per host, so a seventh
  // follower tab would wait forever (and with it every other request from that browser to the server)
  function connect() {
    const url = new URL(data.socket, document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url.href);
    ws.onmessage = ev => { if (!ev.data) return; wait = 500; const f = JSON.parse(ev.data); show(f);
                           if (f.terminal) { ws.close(); ended(); } };
    ws.onclose = ev => {
      if (gone) return;
      if ((last && last.terminal) || ev.code === 4404) { ended(); return; }  // a run this server does not follow
      $("badge").textContent = "reconnecting";
      timer = setTimeout(connect, wait); wait = Math.min(2 * wait, 5000);
    };
  }
  const redraw = () => { if (last) { drawScatter(last.picture); drawAccuracy(last.accuracy); } };
  window.addEventListener("resize", redraw);
  connect();
  return () => { gone = true; clearTimeout(timer); window.removeEventListener("resize", redraw); if (ws) ws.close(); };
}
