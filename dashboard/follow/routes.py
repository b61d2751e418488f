"""The follower routes of the server (issue 18 part 1), served by Streamlit's own Starlette server through
``st.App(..., routes=follower_routes())`` in ``app.py``, both fed by the same :class:`FrameChannel` (frames
encoded once for every follower):

- ``/_vaegmm/runs/<id>/socket``, a WebSocket: one text message of JSON per frame. The follower page uses it: a
  browser opens at most six HTTP/1.1 connections to one host, so six tabs holding a Server-Sent Events stream each
  would leave a seventh tab (and every other request to the server from that browser) waiting; WebSockets do not
  count against that limit.
- ``GET /_vaegmm/runs/<id>/events``, a Server-Sent Events stream (``text/event-stream``) for plain HTTP clients
  (``curl``, ``bench/load.py --followers``): each event is ``id: <v>``, ``event: frame`` and one ``data:`` line of JSON,
  then a blank line; a line starting with ``:`` is a keep-alive comment.

Both end after the frame whose ``terminal`` is true. An id this server does not follow answers 404 (the
WebSocket closes with code 4404); the page then shows the saved run."""
from __future__ import annotations

import contextlib

from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from dashboard.follow.hub import follow_hub

EVENTS_PATH = "/_vaegmm/runs/{run_id:int}/events"
SOCKET_PATH = "/_vaegmm/runs/{run_id:int}/socket"
NOT_FOLLOWED = 4404  # the WebSocket close code for an id this server does not follow


def events_url(run_id: int) -> str:
    """The path of run ``run_id``'s Server-Sent Events on this server."""
    return f"/_vaegmm/runs/{int(run_id)}/events"


def socket_url(run_id: int) -> str:
    """The path of run ``run_id``'s WebSocket on this server."""
    return f"/_vaegmm/runs/{int(run_id)}/socket"


async def run_events(request: Request):
    """The stream of one followed run's frames, or 404."""
    channel = follow_hub().channel(int(request.path_params["run_id"]))
    if channel is None:
        return PlainTextResponse("this server does not follow that run", status_code=404)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(channel.stream(), media_type="text/event-stream", headers=headers)


async def run_socket(websocket: WebSocket) -> None:
    """One follower's WebSocket: every frame's JSON as a text message (an empty one after a long silence, so
    that a closed tab is noticed), closed after the last frame."""
    channel = follow_hub().channel(int(websocket.path_params["run_id"]))
    await websocket.accept()
    if channel is None:
        await websocket.close(code=NOT_FOLLOWED, reason="this server does not follow that run")
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the tab closed (RuntimeError: sent after close)
        async for text in channel.stream(text=True):
            await websocket.send_text(text or "")
        await websocket.close()


def follower_routes() -> list:
    """The routes ``app.py`` adds to Streamlit's server."""
    return [Route(EVENTS_PATH, run_events, methods=["GET"]), WebSocketRoute(SOCKET_PATH, run_socket)]
