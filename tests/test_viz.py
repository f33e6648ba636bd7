"""Seeing inside a model: the arrays API, the neuron ranking, the HTML report, the CLI, and a real browser."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from charzoo.neurons import correlations, rank_units, shortlist, text_features

CHROMIUM = Path("/usr/bin/chromium")
SNOWMAN = "\u2603"  # in no training corpus: stands for a character outside the vocabulary


def names_text(names_path: Path, chars: int) -> str:
    return names_path.read_text(encoding="utf-8")[:chars]


# === Text features and the ranking ===

def test_text_features_mark_each_feature():
    text = 'a "b c" (d[e]) http://x.io/p z [[Li]]\nq'
    f = text_features(text)
    quoted = text.index('"b c"')
    assert f["quotes"][quoted : quoted + 5].tolist() == [1] * 5
    assert f["quotes"][:quoted].sum() == 0 and f["quotes"][quoted + 5 :].sum() == 0
    depth = f["brackets"]
    assert depth[text.index("(")] == 1 and depth[text.index("e")] == 2 and depth[text.index(")")] == 0
    url = text.index("http")
    assert f["url"][url : url + len("http://x.io/p")].all() and f["url"][url + len("http://x.io/p")] == 0
    link = text.index("[[")
    assert f["wiki-link"][link : link + 6].all() and f["wiki-link"].sum() == 6
    assert f["line-position"][0] == 1 and f["line-position"][text.index("\n")] == 0
    assert f["line-position"][-1] == 1


def test_correlations_are_pearson_and_zero_for_a_constant_unit():
    rng = np.random.default_rng(0)
    feature = rng.normal(size=200).astype(np.float32)
    acts = np.stack([feature * 2 + 1, -feature, np.full(200, 0.3), rng.normal(size=200)], axis=1)
    r = correlations(acts, feature)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(-1.0) and r[2] == 0.0
    assert r[3] == pytest.approx(np.corrcoef(acts[:, 3], feature)[0, 1])


def test_ranking_finds_planted_units():
    """Noise everywhere, except a unit that follows quotes and one that counts down the line."""
    text = ('He said "go home" and left.\nShe (quietly) said "no".\n' * 20)
    features = text_features(text)
    rng = np.random.default_rng(1)
    activations = [rng.uniform(-0.5, 0.5, size=(len(text), 16)).astype(np.float32) for _ in range(2)]
    activations[1][:, 5] = features["quotes"] * 0.8 - 0.4 + rng.normal(0, 0.1, len(text))
    activations[0][:, 3] = -features["line-position"] / 30 + rng.normal(0, 0.05, len(text))

    best = rank_units(activations, features, top=3)
    assert {(s.layer, s.unit, s.feature) for s in best[:2]} == {(1, 5, "quotes"), (0, 3, "line-position")}
    assert abs(best[2].correlation) < 0.5
    (quotes,) = rank_units(activations, features, feature="quotes", top=1)
    assert (quotes.layer, quotes.unit) == (1, 5) and quotes.correlation > 0.9
    (line,) = rank_units(activations, features, feature="line-position", top=1)
    assert (line.layer, line.unit) == (0, 3) and line.correlation < -0.9
    assert rank_units(activations, features, feature="url", top=3) == []  # no URL in the text

    picks = shortlist(activations, features, 5)
    assert len(picks) == 5
    reasons = {(p.layer, p.unit): p.reason for p in picks}
    assert reasons[(1, 5)].startswith("tracks quotes (r = +0.9")
    assert reasons[(0, 3)].startswith("tracks line-position (r = -0.9")
    assert any(p.reason.startswith("varies most") for p in picks)


# === The arrays API against the Keras model ===

def test_trace_matches_the_keras_model(tiny_model, names_path):
    from charzoo._keras import keras
    from charzoo.viz import trace_text

    text = names_text(names_path, 2100)  # longer than one NumPy chunk: the state must carry over
    trace = trace_text(tiny_model, text, top_k=5)
    ids = tiny_model.vocab.encode(text)[None, :]
    model = tiny_model.model
    hidden = keras.ops.convert_to_numpy(model.recurrent[0](model.embedding(ids))[0])[0]  # (T, H)
    logits = keras.ops.convert_to_numpy(model(ids))[0]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)

    assert trace.known.all() and len(trace.activations) == 1
    np.testing.assert_allclose(trace.activations[0], hidden, atol=2e-4)
    np.testing.assert_array_equal(trace.top_ids[:, 0], probs.argmax(-1))
    np.testing.assert_allclose(trace.top_probs, np.take_along_axis(probs, trace.top_ids, -1), atol=2e-4)
    assert (np.diff(trace.top_probs, axis=1) <= 0).all()
    expected_next = probs[np.arange(len(text) - 1), ids[0, 1:]]
    np.testing.assert_allclose(trace.next_prob[:-1], expected_next, atol=2e-4)
    assert np.isnan(trace.next_prob[-1])


def test_trace_skips_characters_outside_the_vocabulary(tiny_model):
    from charzoo.viz import trace_text

    clean = "Anna\nBob\n"
    trace = trace_text(tiny_model, "Anna\n" + SNOWMAN + "Bob\n")
    reference = trace_text(tiny_model, clean)
    at = 5
    assert trace.known.tolist() == [True] * 5 + [False] + [True] * 4
    assert np.isnan(trace.activations[0][at]).all() and (trace.top_ids[at] == -1).all()
    assert trace.next_prob[at - 1] == 0.0 and np.isnan(trace.next_prob[at])
    # the model reads the text as if the unknown character were not there
    np.testing.assert_allclose(np.delete(trace.activations[0], at, axis=0), reference.activations[0], atol=1e-6)
    np.testing.assert_allclose(np.delete(trace.next_prob, at)[at:], reference.next_prob[at:], atol=1e-6)
    assert not trace.read[at] and trace.read.sum() == len(clean)


# === The HTML report ===

class _Outline(HTMLParser):
    """Ids, section ids, script blocks and external references of an HTML page."""

    def __init__(self):
        super().__init__()
        self.ids, self.sections, self.scripts, self.external, self.tags = [], [], [], [], []
        self._script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "section":
            self.sections.append(attrs.get("id"))
        for name in ("src", "href"):
            if name in attrs and not (attrs[name] or "").startswith("#"):
                self.external.append(attrs[name])
        if tag == "script":
            self._script = {"type": attrs.get("type"), "id": attrs.get("id"), "text": ""}

    def handle_data(self, data):
        if self._script is not None:
            self._script["text"] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(self._script)
            self._script = None


def _outline(html_text: str) -> _Outline:
    outline = _Outline()
    outline.feed(html_text)
    return outline


def test_report_structure_data_and_escaping(tiny_model, tmp_path, names_path):
    from charzoo.viz import trace_text, write_report
    from charzoo.zoo import CharModel

    text = names_text(names_path, 300) + 'Zoe "</script><b>x</b> & \u2028' + SNOWMAN + "\n"
    named = CharModel(tiny_model.model, tiny_model.vocab, {**tiny_model.metadata, "name": "<i>tiny</i>"},
                      tiny_model.path)
    out = write_report(named, text, tmp_path / "report.html", units=4)
    page = out.read_text(encoding="utf-8")
    outline = _outline(page)

    assert outline.sections == ["predictions", "neurons", "training"]
    assert outline.external == [] and "link" not in outline.tags
    assert {"pred-grid", "neuron-text", "layer-select", "unit-input", "picks", "errors"} <= set(outline.ids)
    assert "<i>tiny</i>" not in page and "&lt;i&gt;tiny&lt;/i&gt;" in page
    assert page.count("</script>") == len(outline.scripts) == 3  # the text's "</script>" stays inside the JSON
    (block,) = [s for s in outline.scripts if s["type"] == "application/json"]
    data = json.loads(block["text"])
    trace = trace_text(tiny_model, text)
    assert data["text"] == text
    assert data["unknown"] == np.flatnonzero(~trace.known).tolist() and len(data["unknown"]) >= 5
    assert data["top_ids"] == trace.top_ids.reshape(-1).tolist()
    assert [p["layer"] for p in data["picks"]] == [0] * 4 and all(p["reason"] for p in data["picks"])
    codes = np.frombuffer(base64.b64decode(data["layers"][0]["int8"]), np.int8).reshape(len(text), -1)
    read = trace.read
    np.testing.assert_allclose(codes[read] / 127, trace.activations[0][read], atol=0.5 / 127 + 1e-6)
    assert (codes[~read] == -128).all()

    # training: the fixture logged two validation rounds and two samples
    assert page.count('<polyline class="line train"') == 1 and page.count('<polyline class="line val"') == 1
    samples = [json.loads(line) for line in (tiny_model.path / "samples.jsonl").read_text().splitlines()]
    assert page.count('<pre class="sample">') == len(samples) == 2
    assert not list(tmp_path.glob(".report.html*"))  # no temp file left behind


def test_report_without_training_logs_says_so(tiny_model, tmp_path):
    from charzoo.viz import write_report
    from charzoo.zoo import CharModel

    bare = CharModel(tiny_model.model, tiny_model.vocab)
    page = write_report(bare, "Anna\nBob\n", tmp_path / "r.html").read_text(encoding="utf-8")
    assert "has no training logs" in page and "<svg" not in page


# === The CLI, in a subprocess ===

def _charzoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "charzoo", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty", "is empty"),
        ("layer", "--layer 1 is out of range; the model has 1 layer(s)"),
        ("units", "--units 33 is out of range; choose 1 to 32"),
        ("out-dir", "does not exist; create it first"),
    ],
)
def test_viz_bad_input_is_one_line(case, expected, tiny_model_dir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("" if case == "empty" else "Anna\nBob\n", encoding="utf-8")
    out = tmp_path / ("missing/report.html" if case == "out-dir" else "report.html")
    extra = {"layer": ["--layer", "1"], "units": ["--units", "33"]}.get(case, [])
    result = _charzoo("viz", str(tiny_model_dir), str(text), "--out", str(out), *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("charzoo: error: ")
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    assert not out.parent.exists() or not list(out.parent.glob(".report.html*"))  # no half-written report


def test_viz_marks_unknown_characters_and_neurons_cli(tiny_model_dir, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(f'Anna\nB{SNOWMAN}b "q" (x)\n', encoding="utf-8")
    out = tmp_path / "report.html"
    result = _charzoo("viz", str(tiny_model_dir), str(text), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                                out.read_text(encoding="utf-8"), re.S).group(1))
    vocab = set(json.loads((tiny_model_dir / "vocab.json").read_text(encoding="utf-8"))["chars"])
    assert data["text"][6] == SNOWMAN and 6 in data["unknown"]
    assert data["unknown"] == [i for i, c in enumerate(data["text"]) if c not in vocab]

    ranked = _charzoo("neurons", str(tiny_model_dir), str(text), "--top", "3", "--json", cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr
    rows = json.loads(ranked.stdout)
    assert len(rows) == 3 and set(rows[0]) == {"layer", "unit", "feature", "correlation"}
    assert abs(rows[0]["correlation"]) >= abs(rows[2]["correlation"])

    missing = _charzoo("neurons", str(tiny_model_dir), str(text), "--feature", "url", cwd=tmp_path)
    assert missing.returncode == 2 and "no url to correlate with" in missing.stderr
    assert missing.stderr.count("\n") == 1


def test_neurons_rejects_an_unknown_feature_without_a_traceback(tmp_path):
    result = _charzoo("neurons", "some-model", "text.txt", "--feature", "commas", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Invalid value for '--feature'" in result.stderr and "quotes" in result.stderr


# === A real browser ===

def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=180)


def _rendered(profile: Path, url: str) -> dict:
    """Body status, error box, selected unit and each character's background from the DOM Chromium rendered."""
    dom = _chromium(profile, "--dump-dom", url).stdout.split("</head>", 1)[1]
    neuron_box = re.search(r'<div id="neuron-text"[^>]*data-layer="(\d+)" data-unit="(\d+)">(.*?)</div>', dom, re.S)
    errors = re.search(r'<pre id="errors"([^>]*)>(.*?)</pre>', dom, re.S)
    spans = re.findall(r'<span[^>]*style="background: rgba?\((\d+), (\d+), (\d+)(?:, ([\d.]+))?\)', neuron_box.group(3))
    alpha = [(1.0 if a == "" else float(a)) * (1 if r == "178" else -1) for r, _, _, a in spans]
    return {
        "status": re.search(r'<body[^>]*data-status="(\w+)"', dom).group(1),
        "errors": errors.group(2).strip(), "errors_hidden": "hidden" in errors.group(1),
        "unit": (int(neuron_box.group(1)), int(neuron_box.group(2))), "signed_alpha": np.array(alpha),
        "columns": dom.count('<div class="col"'),
    }


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_report_in_headless_chromium(tiny_model, tmp_path, names_path):
    from charzoo.viz import trace_text, write_report

    text = names_text(names_path, 600) + 'She said "hello" (twice)\n'
    out = write_report(tiny_model, text, tmp_path / "report.html")
    acts = trace_text(tiny_model, text).activations[0]
    a, b = int(np.nanargmax(np.nanstd(acts, 0))), int(np.nanargmin(np.nanmean(np.abs(acts), 0)))
    profile = tmp_path / "chromium-profile"

    first = _rendered(profile, f"{out.as_uri()}#layer=0&unit={a}")
    second = _rendered(profile, f"{out.as_uri()}#layer=0&unit={b}")
    for view, unit in ((first, a), (second, b)):
        assert view["status"] == "ok" and view["errors"] == "" and view["errors_hidden"]
        assert view["unit"] == (0, unit) and view["columns"] == len(text)
        # every character is coloured by its own activation: sign picks the hue, |value| the opacity
        read = acts[~np.isnan(acts[:, unit]), unit]  # '"', '(' and ')' are not in the names vocabulary
        np.testing.assert_allclose(view["signed_alpha"], np.round(read * 127) / 127, atol=1 / 255 + 1e-3)  # 8-bit alpha
    assert not np.allclose(first["signed_alpha"], second["signed_alpha"], atol=0.05)

    shot = tmp_path / "report.png"
    _chromium(profile, "--window-size=1200,1600", f"--screenshot={shot}", out.as_uri())
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")

    broken = tmp_path / "broken.html"  # a failing script must show up, or the checks above prove nothing
    broken.write_text(out.read_text(encoding="utf-8").replace('id="report-data">', 'id="report-data">{', 1),
                      encoding="utf-8")
    failed = _chromium(profile, "--dump-dom", broken.as_uri()).stdout.split("</head>", 1)[1]
    assert 'data-status="error"' in re.search(r"<body[^>]*>", failed).group(0)
    assert "script error" in re.search(r'<pre id="errors"[^>]*>(.*?)</pre>', failed, re.S).group(1)

