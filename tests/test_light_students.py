"""The server's side of a class, without browsers (issue 18 part 4): light students, clients of Streamlit's
websocket protocol (tests/light_students.py), what the 30-student benchmark uses (``bench/load.py --students``,
BENCHMARKS "A class pressing Start at once"). Not a browser test: it runs beside the other tests, outside the two
browser groups."""
from __future__ import annotations

from browser_support import streamlit_server
from classroom import CLASS_RUN
from light_students import run_classroom


def test_light_students_are_answered_with_their_queue_positions():
    """Light students, clients of Streamlit's websocket protocol (what the 30-student benchmark uses,
    BENCHMARKS "A class pressing Start at once"): four sessions press Start in the same moment against a cap of
    2; each is answered with its run's status, two train at once and the other two are told their places 1 and 2
    in the queue, and every run finishes. No browser: the server's side of a class."""
    with streamlit_server({"VAEGMM_MAX_RUNS": "2", "VAEGMM_RECONNECT_GRACE": "5"},
                          log_name="light_students.log") as (url, _proc):
        r = run_classroom(url, 4, CLASS_RUN, timeout=300)
    assert r["ready"] == 4 and r["shown"] == 4, r
    assert r["first_shown_states"]["running"] + r["first_shown_states"]["queued"] == 4, r
    assert r["first_shown_states"]["queued"] >= 2, r  # at most two slots
    assert set(r["queue_positions"]) >= {1, 2}, r
    assert r["finished"] == 4 and r["ended"] == {"finished": 4, "failed": 0, "stopped": 0}, r
    assert r["polls_per_student"] >= 1, r  # they poll the live fragment as a page does
