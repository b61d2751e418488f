"""Asking the trained model on the dashboard (issue 25), driven by AppTest: a digit drawn on the canvas of a
finished run (the star in the view, the class probabilities, what the model saw, its reconstruction and the 5
nearest training images), an empty canvas, a saved run too old to answer, decoding a point of the explorer's PCA
view and the walk between two class means; the data source: a Serket folder and uploads (a good file is used, each
bad file gives one line and nothing is kept).

The canvas is a Streamlit components-v2 element: AppTest cannot draw on it, so a test sets the canvas's state as
the browser sends it after a stroke (``{"drawing": {"raw": ..., "data": <PNG data URL>}}``); the browser's own
strokes are tests/test_browser_ask.py's.
"""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from markdown_text import shown
from test_app import EXPLORER, TINY, _own_slots, app, by_meta, finish, plotly_specs, runs_of  # noqa: F401
from vaegmm.model.digitize import digitize
from vaegmm.model.data import load_mnist, uploads_dir
from vaegmm.runs.ask import ask_run
from vaegmm.runs.library import iteration_arrays, iteration_from_arrays

RUN = {**TINY, "epochs": "20", "batch": "50"}  # enough training for several GMM classes (LDA needs 3)


def seven(size: int = 280) -> np.ndarray:
    """A canvas ``(size, size, 4)`` uint8 as the browser's canvas returns it: a black 7 on opaque white."""
    im = Image.new("RGBA", (size, size), (255, 255, 255, 255))
    s = size / 280
    ImageDraw.Draw(im).line([(60 * s, 60 * s), (220 * s, 60 * s), (120 * s, 240 * s)], fill=(0, 0, 0, 255),
                            width=int(20 * s))
    return np.asarray(im)


def draw(at, key: str, canvas: np.ndarray):
    """Put ``canvas`` on the canvas widget ``key`` as the browser sends it at the end of a stroke; rerun."""
    buf = io.BytesIO()
    Image.fromarray(canvas, "RGBA").save(buf, "PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    at.session_state[key] = {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": url}, "backgroundFit": None}
    at.run()
    assert not at.exception, at.exception
    return at


def latent_traces(at) -> dict:
    """The first latent chart's traces by meta (points: all of them)."""
    spec = by_meta(plotly_specs(at), "latent")[0]
    out = {}
    for t in spec["data"]:
        out.setdefault(t.get("meta"), []).append(t)
    return out


def html_of(at, testid: str) -> str:
    return next((m.value for m in at.markdown if f'data-testid="{testid}"' in m.value), "")


def captions(at) -> str:
    """Every caption's text as a reader sees it (Markdown escapes undone)."""
    return "\n".join(shown(c.value) for c in at.caption)


def test_a_digit_drawn_on_a_finished_run_lands_as_a_star_with_its_classes_and_pictures():
    at = app(RUN)
    at.button(key="btn_start").click().run()
    run = finish(at)
    assert run.state == "finished"
    # an empty canvas: a prompt, not an error, and no star
    assert any("Draw a digit in the box" in i.value for i in at.info)
    assert not at.error and "star" not in latent_traces(at) and not by_meta(plotly_specs(at), "proba")
    draw(at, "ask_main_0", seven())
    last = run.history[-1].iteration
    want = ask_run(run, last, digitize(seven()).image)
    star = latent_traces(at)["star"][0]
    np.testing.assert_allclose([star["x"][0], star["y"][0]], want.pca_xy[0], atol=1e-5)  # PCA: exact
    assert star["marker"]["symbol"] == "star"
    proba = by_meta(plotly_specs(at), "proba")[0]["data"][0]
    k = int(RUN.get("k", 10))
    np.testing.assert_allclose(proba["x"], want.proba[0], atol=1e-9)
    assert len(proba["y"]) == k and sum(proba["x"]) == pytest.approx(1.0)
    assert all(re.fullmatch(r"class \d+ · (mostly \ds|empty)", name) for name in proba["y"]), proba["y"]
    c = int(want.classes[0])
    said = next(m.value for m in at.markdown if "Your digit joins" in m.value)
    assert f"**class {c}**" in said and f"{want.proba[0].max():.2f}" in said
    if want.digits[0] >= 0:
        assert f"reads it as a **{int(want.digits[0])}**" in said
    # what the model saw, its reconstruction, and the 5 nearest training images with their digits, in order
    pictures = html_of(at, "vaegmm-asked")
    assert pictures.count("<img") == 2 + 5
    names = re.findall(r"<figcaption[^>]*>nearest (\d): digit (\d)", pictures)
    assert [int(d) for _, d in names] == [int(run.labels[i]) for i in want.nearest[0]]
    assert "projected exactly" in captions(at)
    # LDA: the star at the drawing's exact LDA place
    at.segmented_control(key="view_kind").set_value("LDA").run()
    star = latent_traces(at)["star"][0]
    np.testing.assert_allclose([star["x"][0], star["y"][0]], want.lda_xy[0], atol=1e-5)
    # t-SNE: at the mean place of the nearest training codes, and the page says so
    at.segmented_control(key="view_kind").set_value("t-SNE").run()
    assert run.views.wait_tsne(last, 180), "t-SNE did not finish"
    at.run()
    near = ask_run(run, last, digitize(seven()).image)
    star = latent_traces(at)["star"][0]
    np.testing.assert_allclose([star["x"][0], star["y"][0]], near.tsne_xy[0], atol=1e-5)
    assert "no map for a new point" in captions(at)
    # Clear: an empty canvas again
    at.button(key="ask_main_clear").click().run()
    assert any("Draw a digit in the box" in i.value for i in at.info) and "star" not in latent_traces(at)


def test_the_explorer_asks_decodes_a_clicked_spot_and_walks_between_class_means():
    at = app(RUN)
    at.button(key="btn_start").click().run()
    run = finish(at)
    at.switch_page(EXPLORER).run()
    assert not at.exception
    last = run.history[-1].iteration
    draw(at, "ask_explore_0", seven())
    want = ask_run(run, last, digitize(seven()).image)
    traces = latent_traces(at)
    np.testing.assert_allclose([traces["star"][0]["x"][0], traces["star"][0]["y"][0]], want.pca_xy[0], atol=1e-5)
    assert html_of(at, "vaegmm-asked").count("<img") == 7
    # the PCA view carries the invisible click grid; a click on it decodes that place
    grid = traces["grid"][0]
    assert len(grid["x"]) == 41 * 41 and all(row[0] == -1 for row in grid["customdata"])
    spec = by_meta(plotly_specs(at), "latent")[0]
    curve = next(i for i, t in enumerate(spec["data"]) if t.get("meta") == "grid")
    x, y = float(grid["x"][100]), float(grid["y"][100])
    at.session_state["explore_scatter"] = {"selection": {"points": [
        {"curve_number": curve, "point_index": 100, "x": x, "y": y, "customdata": [-1]}], "point_indices": [100],
        "box": [], "lasso": []}}
    at.run()
    assert not at.exception, at.exception
    assert any(f"decoded at ({x:.2f}, {y:.2f})" in m.value for m in at.markdown)
    d = int(RUN["latent"])
    assert f"the other {d - 2} directions of the {d}-dimensional code are at the mean" in captions(at)
    decoded = latent_traces(at)["decoded"][0]
    assert (decoded["x"][0], decoded["y"][0]) == pytest.approx((x, y))
    # the walk between the two busiest classes: 9 decoded images from one class mean to the other
    walk = html_of(at, "vaegmm-walk")
    assert walk.count("<img") == 9
    counts = np.asarray(run.history[-1].class_counts)
    a, b = np.argsort(-counts, kind="stable")[:2]
    assert f"class {a}" in walk and f"class {b}" in walk
    # LDA: decoding needs the PCA view, said plainly, and no grid
    at.segmented_control(key="explore_view").set_value("LDA").run()
    assert "Decoding a point needs the PCA view" in captions(at) and "grid" not in latent_traces(at)


def test_a_saved_run_too_old_to_answer_says_so_in_one_sentence(session_db):
    at = app(RUN)
    at.button(key="btn_start").click().run()
    run = finish(at)
    folder = Path(session_db).parent / "runs" / str(run.id) / "iterations"
    files = sorted(folder.glob("*.npz"))
    assert files, folder
    for f in files:  # as a run saved before runs kept their encoders
        with np.load(f) as a:
            r = iteration_from_arrays(a)
        old = {k: v for k, v in iteration_arrays(r).items()
               if not k.startswith(("encoder.", "gmm.", "heldout")) and k != "digit_of_class"}
        np.savez(f, **old)
    saved = app({"run": str(run.id)})
    assert not saved.exception
    assert "This run cannot be asked" in captions(saved)
    assert not any("Draw a digit in the box" in i.value for i in saved.info)
    assert not by_meta(plotly_specs(saved), "proba")


# ---------------------------------------------------------------------------------------------- data source
@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """Uploads kept in a folder of the test's own."""
    monkeypatch.setenv("VAEGMM_CACHE_DIR", str(tmp_path / "cache"))
    return uploads_dir()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def kept(folder: Path) -> list:
    return sorted(folder.glob("*")) if folder.exists() else []


def test_an_upload_is_used_and_each_bad_file_gives_one_line_and_keeps_nothing(own_cache):
    images, labels = load_mnist(200, seed=3, source="bundled")
    at = app({})
    at.radio(key="data_kind").set_value("upload").run()
    assert "until a good folder or file is given, runs use mnist" in captions(at).lower()
    bad = [
        ("wide.npy", _npy(np.zeros((50, 700), np.float32)), None, "784"),
        ("nan.npy", _npy(np.full((50, 784), np.nan, np.float32)), None, "NaN"),
        ("range.npy", _npy(np.full((50, 784), 300.0, np.float32)), None, "range"),
        ("text.npy", b"this is not a numpy file", None, ".npy"),
        ("many.npy", _npy(np.zeros((70001, 784), np.uint8)), None, "70000"),
        ("ok.npy", _npy(images), ("labels.txt", b"1\n2\n3\n"), "labels"),
    ]
    for name, data, label_file, words in bad:
        at.file_uploader(key="upload_images").set_value((name, data, "application/octet-stream"))
        at.file_uploader(key="upload_labels").set_value(
            None if label_file is None else (label_file[0], label_file[1], "text/plain"))
        at.run()
        assert not at.exception, at.exception
        errors = [e.value for e in at.sidebar.error]
        assert len(errors) == 1 and "\n" not in errors[0] and words.lower() in errors[0].lower(), (name, errors)
        assert kept(own_cache) == [], name  # nothing kept
        assert at.session_state["cfg_source"] == "auto", name  # the source stays as it was
    # a good file with its labels: kept once, used as the source, 80 % trained on (balanced), the rest held out
    at.file_uploader(key="upload_images").set_value(("digits.npy", _npy(images), "application/octet-stream"))
    at.file_uploader(key="upload_labels").set_value(
        ("digits.txt", "\n".join(map(str, labels)).encode(), "text/plain"))
    at.run()
    assert not at.exception and not at.sidebar.error
    source = at.session_state["cfg_source"]
    assert re.fullmatch(r"upload:[0-9a-f]{16}", source) and len(kept(own_cache)) == 1
    per_digit = int(np.bincount(labels).min() * 0.8)
    assert at.number_input(key="cfg_n").value == 10 * per_digit
    assert at.query_params["source"] in ([source], source)  # in the link, as every setting
    assert "200 images (labelled, digits 0123456789)" in captions(at)
    # the run's settings name its source
    at.button(key="btn_start").click().run()
    entry = runs_of(at).current
    assert entry.run.config.data.source == source and f"data {source}" in entry.label
    entry.run.stop()
    entry.run.join(30)


def test_a_serket_folder_becomes_the_source_and_a_bad_one_is_one_line(tmp_path):
    images, labels = load_mnist(40, seed=0, source="bundled")
    order = np.argsort(np.arange(40) % 10, kind="stable")  # any order: the folder's is kept
    folder = tmp_path / "mnist"
    folder.mkdir()
    np.savetxt(folder / "data.txt", images[order])
    np.savetxt(folder / "category.txt", labels[order], fmt="%d")
    at = app({})
    at.radio(key="data_kind").set_value("serket").run()
    at.text_input(key="serket_folder").input(str(tmp_path / "nowhere")).run()
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "does not exist" in errors[0] and at.session_state["cfg_source"] == "auto"
    at.text_input(key="serket_folder").input(str(folder)).run()
    assert not at.exception and not at.sidebar.error
    assert at.session_state["cfg_source"] == f"serket:{folder}"
    assert at.number_input(key="cfg_n").value == 40 and at.number_input(key="cfg_k").value == 10
    # back to MNIST
    at.radio(key="data_kind").set_value("mnist").run()
    assert at.session_state["cfg_source"] == "auto" and "source" not in at.query_params


def test_how_it_works_explains_asking_the_model():
    at = app({})
    at.switch_page("pages/3_How_it_works.py").run()
    assert not at.exception
    assert "6. Ask the trained model" in [h.value for h in at.header]
    text = "\n".join(m.value for m in at.markdown)
    for words in ("held-out", "draw a 7 and see which class it joins", "Decode any point", "no labels"):
        assert words in text, words


# ---------------------------------------------------------------------------------------------- held-out scores
def metric_values(at) -> dict:
    """The metric cards as {label: value}."""
    return {m.label: m.value for m in at.metric}


def page_text(at) -> str:
    """Every caption, info, warning and Markdown text of the page, as a reader sees it."""
    return "\n".join(shown(e.value) for kind in (at.caption, at.info, at.warning, at.markdown) for e in kind)


def test_held_out_accuracy_stands_beside_the_training_one_in_cards_chart_saved_run_and_library():
    at = app(RUN)
    at.button(key="btn_start").click().run()
    run = finish(at)
    last = run.history[-1]
    assert run.heldout["images"] > 0 and last.heldout_accuracy is not None
    cards = metric_values(at)
    assert cards["held-out accuracy"] == f"{last.heldout_accuracy:.3f}"
    assert cards["held-out NMI"] == f"{last.heldout_nmi:.3f}" and cards["accuracy"] == f"{last.accuracy:.3f}"
    help_text = next(m.help for m in at.metric if m.label == "held-out accuracy")
    assert "never saw" in help_text and "matching" in help_text
    assert "no held-out set" not in page_text(at)
    # the chart: the training accuracy solid, the held-out accuracy dashed in the same colour, per iteration
    traces = {t["name"]: t for t in by_meta(plotly_specs(at), "metrics")[0]["data"]}
    accuracy = [traces[n] for n in traces if "accuracy" in n]
    assert [t["name"] for t in accuracy] == ["accuracy", "held-out accuracy"]
    held = traces["held-out accuracy"]
    assert held["line"]["dash"] == "dash" and held["line"]["color"] == traces["accuracy"]["line"]["color"]
    np.testing.assert_allclose(held["y"], [r.heldout_accuracy for r in run.history], atol=1e-6)
    assert "dashed: held-out images" in page_text(at)
    # the saved run's page shows the same cards, and the run library's table the final held-out scores
    saved = app({"run": str(run.library_id)})
    assert not saved.exception
    assert metric_values(saved)["held-out accuracy"] == f"{last.heldout_accuracy:.3f}"
    compare = app({})
    compare.switch_page("pages/1_Compare_runs.py").run()
    compare.segmented_control(key="compare_mode").set_value("all saved runs").run()
    assert not compare.exception, compare.exception
    row = compare.dataframe[0].value.set_index("run").loc[run.library_id]
    assert row["held-out accuracy"] == pytest.approx(last.heldout_accuracy, abs=1e-4)
    assert row["held-out NMI"] == pytest.approx(last.heldout_nmi, abs=1e-4)


def test_a_run_on_all_5000_bundled_images_says_once_that_it_has_no_held_out_set(monkeypatch, tmp_path):
    from vaegmm.model import data

    monkeypatch.delenv(data.IDX_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))  # no OpenML copy: no MNIST test split
    at = app({**TINY, "n": "5000", "latent": "2", "epochs": "1", "iterations": "1", "batch": "1000", "gmm": "em"})
    at.button(key="btn_start").click().run()
    run = finish(at)
    assert run.heldout["images"] == 0 and all(r.heldout_accuracy is None for r in run.history)
    cards = metric_values(at)
    assert "held-out accuracy" not in cards and cards["accuracy"] == f"{run.history[-1].accuracy:.3f}"
    text = page_text(at)
    assert text.count("no held-out set") == 1, text
    assert ("no held-out set: all 500 bundled images per digit are used for training and this machine has no "
            "MNIST test split") in text
    traces = by_meta(plotly_specs(at), "metrics")[0]["data"]
    assert [t["name"] for t in traces] == ["accuracy", "NMI", "ARI"]


def test_an_unlabelled_upload_says_no_labels_in_the_cards(own_cache):
    images, _ = load_mnist(200, seed=3, source="bundled")
    at = app(TINY)
    at.radio(key="data_kind").set_value("upload").run()
    at.file_uploader(key="upload_images").set_value(("digits.npy", _npy(images), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.sidebar.error
    at.button(key="btn_start").click().run()
    run = finish(at)
    assert run.labels is None and run.heldout["images"] > 0 and not run.heldout["labelled"]
    cards = metric_values(at)
    for label in ("accuracy", "held-out accuracy", "NMI", "held-out NMI", "ARI"):
        assert cards[label] == "no labels", (label, cards)
    assert not by_meta(plotly_specs(at), "metrics")
    assert "No labels: this data has no digits to score the classes against" in page_text(at)
    # the views colour by GMM class: one trace per class of the last iteration, titled "no labels"
    last = run.history[-1]

    def coloured_by_class(page) -> None:
        spec = by_meta(plotly_specs(page), "latent")[0]
        names = sorted(t["name"] for t in spec["data"] if t.get("meta") == "points")
        assert names == sorted(f"class {k}" for k in np.unique(last.classes)), names
        assert "no labels" in spec["layout"]["title"]["text"]

    coloured_by_class(at)
    assert "No labels: the points are coloured by GMM class." in page_text(at)
    # the saved run's page and the explorer show it too
    saved = app({"run": str(run.library_id)})
    assert metric_values(saved)["accuracy"] == "no labels" and "no longer on disk" not in page_text(saved)
    coloured_by_class(saved)
    at.switch_page(EXPLORER).run()
    assert not at.exception, at.exception
    assert "the points are coloured by GMM class" in page_text(at)
