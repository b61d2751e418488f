"""The follower route of the server (issue 18 part 1): ``GET /_vaegmm/runs/<id>/events``, a Server-Sent Events
stream (``text/event-stream``) of a followed run's frames (:mod:`dashboard.state.follow_frames`), served by
Streamlit's own Starlette server through ``st.App(..., routes=follower_routes())`` in ``app.py``.

Protocol: each event is ``id: <v>``, ``event: frame`` and one ``data:`` line of JSON, then a blank line; a line
starting with ``:`` is a keep-alive comment. The stream ends after the frame whose ``terminal`` is true. An id
this server does not follow answers 404 (the page then shows the saved run)."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from dashboard.state.follow_hub import follow_hub

EVENTS_PATH = "/_vaegmm/runs/{run_id:int}/events"


def events_url(run_id: int) -> str:
    """The path of run ``run_id``'s frames on this server."""
    return f"/_vaegmm/runs/{int(run_id)}/events"


async def run_events(request: Request):
    """The stream of one followed run's frames, or 404."""
    channel = follow_hub().channel(int(request.path_params["run_id"]))
    if channel is None:
        return PlainTextResponse("this server does not follow that run", status_code=404)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(channel.stream(), media_type="text/event-stream", headers=headers)


def follower_routes() -> list:
    """The routes ``app.py`` adds to Streamlit's server."""
    return [Route(EVENTS_PATH, run_events, methods=["GET"])]
