"""See inside a model: per-character predictions and hidden activations, as arrays or as one HTML report.

`trace_text` runs a text through the model and returns NumPy arrays for
notebooks: the top-k guesses for the next character after each character, the
probability of the character that actually came, and every unit's activation.
`write_report` turns the same data into one self-contained HTML file (inline
CSS and JavaScript, opens from disk without a network) with three sections, as
in the char-rnn blog post: predictions, neurons, and training.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from charzoo.errors import CharzooError
from charzoo.evaluation import CHUNK
from charzoo.models import NumpyCharRNN
from charzoo.neurons import FEATURES, Pick, UnitScore, rank_units, shortlist, text_features, varying_features
from charzoo.vocab import code_points
from charzoo.zoo import SAMPLES_FILE, CharModel, write_text

TOP_K = 5
DEFAULT_UNITS = 10  # units in the report's shortlist
MAX_SAMPLE_ROWS = 12  # rows of the sample-evolution table, spread over training
UNREAD = -128  # int8 code for "the model did not read this character"


@dataclass(frozen=True)
class TextTrace:
    """What a model did on each character of a text; T is the number of characters.

    A character outside the vocabulary is `known` False. The model reads it as the
    unknown character when its vocabulary has one; otherwise it skips it, and the
    arrays hold -1 / NaN at that position.
    """

    text: str
    vocab: tuple[str, ...]  # the model's characters; ids index this
    known: np.ndarray  # (T,) bool: the character is in the vocabulary
    top_ids: np.ndarray  # (T, k) int32: the k likeliest next characters after reading text[t]
    top_probs: np.ndarray  # (T, k) float32: their probabilities, descending
    next_prob: np.ndarray  # (T,) float32: p(text[t + 1] | text[: t + 1]); NaN for the last character
    activations: list[np.ndarray]  # per layer (T, H) float32: hidden output after reading text[t]

    @property
    def read(self) -> np.ndarray:
        """(T,) bool: the model read this character (it may be mapped to the unknown character)."""
        return ~np.isnan(self.activations[0][:, 0])


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


def trace_text(charmodel: CharModel, text: str, *, top_k: int = TOP_K) -> TextTrace:
    """Run `text` through the model as one stream and return its predictions and activations."""
    if not text.strip():
        raise CharzooError("the text is empty; pass a file with some text in it", exit_code=2)
    vocab = charmodel.vocab
    known = np.isin(code_points(text), np.array([ord(c) for c in vocab.chars], np.uint32))
    read = known if vocab.unknown is None else np.ones(len(text), bool)
    positions = np.flatnonzero(read)
    if not len(positions):
        raise CharzooError(
            f"none of the {len(text):,} characters of the text is in the model's vocabulary; "
            "pass text like the text the model was trained on", exit_code=2,
        )
    ids = vocab.encode("".join(text[p] for p in positions), map_unknown=True)

    net = NumpyCharRNN(charmodel.model)
    k = min(top_k, len(vocab))
    n, hidden, layers = len(text), charmodel.config.hidden, charmodel.config.layers
    top_ids = np.full((n, k), -1, np.int32)
    top_probs = np.full((n, k), np.nan, np.float32)
    next_prob = np.full(n, np.nan, np.float32)
    activations = [np.full((n, hidden), np.nan, np.float32) for _ in range(layers)]
    stream_next = np.full(len(ids), np.nan, np.float32)  # p(ids[i + 1]) after reading ids[i]
    state = None
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        at = positions[start : start + CHUNK]
        outputs, state = net.hidden_states(chunk[None, :], state)  # per layer (1, n, H)
        probs = _softmax(outputs[-1][0] @ net.head_kernel + net.head_bias)  # (n, V)
        order = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # (n, k)
        top_ids[at] = order
        top_probs[at] = np.take_along_axis(probs, order, axis=-1)
        for layer, out in enumerate(outputs):
            activations[layer][at] = out[0]
        targets = ids[start + 1 : start + len(chunk) + 1]
        stream_next[start : start + len(targets)] = probs[np.arange(len(targets)), targets]
    has_next = positions + 1 < n
    # the next read id is the next character when that character was read; one outside the vocabulary gets 0
    next_prob[positions[has_next]] = np.where(read[positions[has_next] + 1], stream_next[has_next], 0.0)
    return TextTrace(text, vocab.chars, known, top_ids, top_probs, next_prob, activations)


def rank_neurons(
    charmodel: CharModel, text: str, *, feature: str | None = None, top: int = 10, max_chars: int = 20_000
) -> list[UnitScore]:
    """The `top` hidden units that track a text feature best on the first `max_chars` characters of `text`.

    See `charzoo.neurons.rank_units`; a feature absent from the text (no quotes at
    all, say) cannot be correlated, and asking for it alone is an error.
    """
    if top < 1:
        raise CharzooError(f"--top must be at least 1, got {top}", exit_code=2)
    if max_chars < 2:
        raise CharzooError(f"--max-chars must be at least 2, got {max_chars}", exit_code=2)
    if feature is not None and feature not in FEATURES:
        raise CharzooError(f"unknown feature {feature!r}; choose one of {', '.join(FEATURES)}", exit_code=2)
    trace = trace_text(charmodel, text[:max_chars])
    features = text_features(trace.text)
    present = varying_features(features)
    wanted = [feature] if feature else list(FEATURES)
    if not set(wanted) & set(present):
        raise CharzooError(
            f"the first {len(trace.text):,} characters have no {' / '.join(wanted)} to correlate with; "
            f"pass a text that has some, or a larger --max-chars",
            exit_code=2,
        )
    return rank_units(trace.activations, features, feature=feature, top=top)


def write_report(
    charmodel: CharModel, text: str, out: str | Path, *, max_chars: int = 3000,
    layer: int | None = None, units: int | None = None,
) -> Path:
    """Write the HTML report on the first `max_chars` characters of `text` to `out`, atomically.

    Args:
        charmodel: the model to look inside.
        text: the text to run through it.
        out: the HTML file to write.
        max_chars: characters of `text` to show.
        layer: show only this layer's units (0-based); None shows every layer.
        units: how many units the shortlist of interesting units holds.
    """
    out = Path(out)
    config = charmodel.config
    if max_chars < 1:
        raise CharzooError(f"--max-chars must be at least 1, got {max_chars}", exit_code=2)
    if layer is not None and not 0 <= layer < config.layers:
        raise CharzooError(
            f"--layer {layer} is out of range; the model has {config.layers} layer(s), "
            f"numbered 0 to {config.layers - 1}",
            exit_code=2,
        )
    shown_layers = list(range(config.layers)) if layer is None else [layer]
    available = config.hidden * len(shown_layers)
    units = min(DEFAULT_UNITS, available) if units is None else units
    if not 1 <= units <= available:
        raise CharzooError(f"--units {units} is out of range; choose 1 to {available} units for the shortlist",
                           exit_code=2)
    _check_writable(out)

    trace = trace_text(charmodel, text[:max_chars])
    features = text_features(trace.text)
    picks = [replace(p, layer=shown_layers[p.layer])
             for p in shortlist([trace.activations[i] for i in shown_layers], features, units)]
    try:
        write_text(out, _render_report(charmodel, trace, shown_layers, picks))
    except OSError as e:
        raise CharzooError(f"cannot write the report to {out}: {e.strerror or e}") from e
    return out


def _check_writable(out: Path) -> None:
    """Fail before any work when the report could not be written to `out`."""
    if out.is_dir():
        raise CharzooError(f"--out {out} is a directory; pass a file name such as {out / 'report.html'}", exit_code=2)
    parent = out.parent
    if not parent.is_dir():
        raise CharzooError(f"cannot write {out}: directory {parent} does not exist; create it first", exit_code=2)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CharzooError(f"cannot write {out}: directory {parent} is not writable; choose another --out")


# === HTML ===

def _json_for_script(data: Any) -> str:
    """JSON that cannot end its <script> block early: <, > and & become \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _per_mille(values: np.ndarray) -> list[int | None]:
    return [None if math.isnan(v) else int(round(v * 1000)) for v in values.tolist()]


def _activation_bytes(acts: np.ndarray) -> str:
    """(T, H) activations in [-1, 1] as base64 int8, row-major; UNREAD where the model skipped a character."""
    codes = np.where(np.isnan(acts), UNREAD, np.round(np.clip(np.nan_to_num(acts), -1, 1) * 127))
    return base64.b64encode(codes.astype(np.int8).tobytes()).decode("ascii")


def _report_data(trace: TextTrace, shown_layers: list[int], picks: list[Pick]) -> dict[str, Any]:
    return {
        "text": trace.text,
        "vocab": list(trace.vocab),
        "unknown": np.flatnonzero(~trace.known).tolist(),
        "k": trace.top_ids.shape[1],
        "top_ids": trace.top_ids.reshape(-1).tolist(),
        "top_pm": _per_mille(trace.top_probs.reshape(-1)),  # probabilities in thousandths
        "next_pm": _per_mille(trace.next_prob),
        "hidden": trace.activations[0].shape[1],
        "layers": [{"index": i, "int8": _activation_bytes(trace.activations[i])} for i in shown_layers],
        "picks": [{"layer": p.layer, "unit": p.unit, "reason": p.reason} for p in picks],
    }


def _asset(name: str) -> str:
    return resources.files("charzoo").joinpath(name).read_text(encoding="utf-8")


def _summary(charmodel: CharModel, trace: TextTrace) -> str:
    config = charmodel.config
    scored = trace.next_prob[~np.isnan(trace.next_prob)]
    bits = float(-np.log2(np.maximum(scored, 1e-9)).mean()) if scored.size else None
    unknown = int((~trace.known).sum())
    parts = [
        f"{config.layers} × {config.hidden} {config.cell.upper()}",
        f"{len(trace.vocab)}-character vocabulary",
        f"{len(trace.text):,} characters shown",
    ]
    corpus, steps = charmodel.metadata.get("corpus"), charmodel.metadata.get("steps")
    if isinstance(corpus, dict) and isinstance(corpus.get("name"), str) and isinstance(steps, int):
        parts.insert(1, f"trained {steps:,} steps on {corpus['name']}")
    if bits is not None:
        parts.append(f"{bits:.2f} bits/char on this text")
    if unknown:
        parts.append(f"{unknown:,} outside the vocabulary (dashed)")
    return " · ".join(parts)


def _render_report(charmodel: CharModel, trace: TextTrace, shown_layers: list[int], picks: list[Pick]) -> str:
    """The whole report as one HTML string."""
    name = charmodel.metadata.get("name") or (charmodel.path.name if charmodel.path else "model")
    training = _training_section(charmodel)
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>charzoo · {e(name)}</title>
<style>
{_asset("report.css")}
</style>
<script>
{_asset("report_errors.js")}
</script>
</head>
<body data-status="loading">
<header>
<h1>Inside <code>{e(name)}</code></h1>
<p class="summary">{e(_summary(charmodel, trace))}</p>
<nav><a href="#predictions">Predictions</a> <a href="#neurons">Neurons</a> <a href="#training">Training</a></nav>
</header>
<pre id="errors" hidden></pre>

<section id="predictions">
<h2>Predictions</h2>
<p class="help">Each character of the text, shaded by how much it surprised the model, with the model's five
guesses for the character after it underneath: darker = likelier; the guess that was right is outlined.
Hover for the numbers.</p>
<div class="legend"><span>expected</span><span class="ramp surprise-ramp"></span><span>surprising (≥ 8 bits)</span>
<span class="gap"></span><span>guess</span><span class="ramp guess-ramp"></span><span>p = 1</span></div>
<div id="pred-grid" class="pred-grid"></div>
</section>

<section id="neurons">
<h2>Neurons</h2>
<p class="help">The text coloured by one hidden unit's activation after each character. Start with the shortlist:
units whose activation follows quotes, brackets, the position in a line, URLs or [[links]] best.</p>
<div class="controls">
<label>Layer <select id="layer-select"></select></label>
<label>Unit <input id="unit-input" type="number" min="0" value="0"></label>
<button type="button" id="unit-prev" title="previous unit">◀</button>
<button type="button" id="unit-next" title="next unit">▶</button>
<span class="legend"><span>−1</span><span class="ramp diverging-ramp"></span><span>+1</span></span>
</div>
<div id="picks" class="picks"></div>
<h3 id="unit-title"></h3>
<div id="neuron-text" class="neuron-text"></div>
</section>

{training}
<script type="application/json" id="report-data">{_json_for_script(_report_data(trace, shown_layers, picks))}</script>
<script>
{_asset("report.js")}
</script>
</body>
</html>
"""


# === Training section ===

def _read_samples(path: Path) -> list[dict[str, Any]]:
    """The {step, loss, sample} lines of samples.jsonl; unreadable lines are skipped."""
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and isinstance(row.get("sample"), str):
            rows.append(row)
    return rows


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round numbers spanning [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _loss_chart_svg(history: list[dict[str, Any]], *, width: int = 720, height: int = 280) -> str:
    """Train and validation loss against step as an inline SVG line chart."""
    series = [(key, label, css) for key, label, css in
              (("loss", "train", "train"), ("val_loss", "validation", "val"))
              if any(isinstance(h.get(key), (int, float)) for h in history)]
    points = {key: [(h["step"], h[key]) for h in history
                    if isinstance(h.get("step"), (int, float)) and isinstance(h.get(key), (int, float))]
              for key, _, _ in series}
    xs = [x for pts in points.values() for x, _ in pts]
    ys = [y for pts in points.values() for _, y in pts]
    left, right, top, bottom = 56, 16, 16, 40
    x_low, x_high = min(xs + [0]), max(xs)
    y_low, y_high = min(ys), max(ys)
    pad = (y_high - y_low) * 0.08 or 0.1
    y_low, y_high = y_low - pad, y_high + pad

    def sx(x: float) -> float:
        return left + (x - x_low) / ((x_high - x_low) or 1) * (width - left - right)

    def sy(y: float) -> float:
        return top + (y_high - y) / (y_high - y_low) * (height - top - bottom)

    parts = [f'<svg class="loss-chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="loss against training step">']
    for y in _nice_ticks(y_low, y_high):
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    for x in _nice_ticks(x_low, x_high):
        parts.append(f'<text class="tick" x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle">{x:g}</text>')
    parts.append(f'<text class="axis-label" x="{(left + width - right) / 2}" y="{height - 6}" '
                 f'text-anchor="middle">step</text>'
                 f'<text class="axis-label" x="14" y="{(top + height - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {(top + height - bottom) / 2})">loss (nats/char)</text>')
    for i, (key, label, css) in enumerate(series):
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points[key])
        parts.append(f'<polyline class="line {css}" points="{coords}"/>')
        parts += [f'<circle class="dot {css}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3">'
                  f'<title>{label} loss {y:.4f} at step {x:g}</title></circle>' for x, y in points[key]]
        lx = width - right - 130
        ly = top + 10 + 18 * i
        parts.append(f'<line class="line {css}" x1="{lx}" x2="{lx + 22}" y1="{ly}" y2="{ly}"/>'
                     f'<text class="legend-label" x="{lx + 28}" y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _spread(rows: list[Any], count: int) -> list[Any]:
    """At most `count` rows evenly spread from first to last."""
    if len(rows) <= count:
        return rows
    return [rows[round(i * (len(rows) - 1) / (count - 1))] for i in range(count)]


def _format_loss(loss: Any) -> str:
    return f"{loss:.3f}" if isinstance(loss, (int, float)) else ""


def _samples_table(samples: list[dict[str, Any]]) -> str:
    e = html.escape
    shown = _spread(samples, MAX_SAMPLE_ROWS)
    note = f" ({len(shown)} of {len(samples)}, spread over training)" if len(shown) < len(samples) else ""
    rows = "".join(
        f'<tr><td class="num">{row["step"]:,}</td>'
        f'<td class="num">{_format_loss(row.get("loss"))}</td>'
        f'<td><pre class="sample">{e(row["sample"])}</pre></td></tr>'
        for row in shown
    )
    return (f"<h3>Samples as the model learned{e(note)}</h3>"
            f'<table class="samples"><thead><tr><th>step</th><th>loss</th><th>sample</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _training_section(charmodel: CharModel) -> str:
    history = [h for h in charmodel.metadata.get("history") or [] if isinstance(h, dict)]
    has_losses = any(isinstance(h.get(k), (int, float)) and isinstance(h.get("step"), (int, float))
                     for h in history for k in ("loss", "val_loss"))
    samples = _read_samples(charmodel.path / SAMPLES_FILE) if charmodel.path else []
    body = []
    if has_losses:
        body.append(f'<h3>Loss</h3><div class="chart">{_loss_chart_svg(history)}</div>')
    if samples:
        body.append(_samples_table(samples))
    if not body:
        body.append('<p class="help">This model directory has no training logs '
                    '(metadata.json "history", samples.jsonl).</p>')
    return f'<section id="training">\n<h2>Training</h2>\n{"".join(body)}\n</section>'
