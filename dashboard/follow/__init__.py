"""The follower channel of a live run (issue 18: "Share a live run"), in one place: what a follower sees as one
JSON frame (:mod:`~dashboard.follow.frames`), the server's followable runs and their channels, each frame encoded
once for every follower (:mod:`~dashboard.follow.hub`), the routes that push the frames (:mod:`~dashboard.follow.routes`)
and the component that draws them in the follower's page (:mod:`~dashboard.follow.view`). The lowest layer of the
dashboard: it imports only the ``vaegmm`` package, Streamlit and Starlette."""
