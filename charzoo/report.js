// Renders the report from the JSON in #report-data: the predictions grid and the neuron view.
// The URL hash selects a unit (#layer=0&unit=3), so a view can be linked to and tested.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var chars = Array.from(data.text);  // code points, as Python indexes the text
  var T = chars.length, K = data.k, H = data.hidden;
  var unknown = new Set(data.unknown);

  function visible(c) {  // a visible stand-in for whitespace and control characters
    if (c === " ") return "\u2423";
    if (c === "\n") return "\u21b5";
    if (c === "\t") return "\u21e5";
    var code = c.codePointAt(0);
    return code < 32 || (code >= 127 && code < 160) ? "\u00b7" : c;
  }

  function describe(c) {
    var names = {" ": "space", "\n": "newline", "\t": "tab"};
    if (names[c]) return names[c];
    return visible(c) === c ? "\u2018" + c + "\u2019" : "U+" + c.codePointAt(0).toString(16).toUpperCase();
  }

  function percent(pm) { return (pm / 10).toFixed(pm < 10 ? 1 : 0) + "%"; }

  // === Predictions ===
  function renderPredictions() {
    var grid = document.getElementById("pred-grid");
    var fragment = document.createDocumentFragment();
    for (var t = 0; t < T; t++) {
      var c = chars[t], col = document.createElement("div"), head = document.createElement("div");
      col.className = "col";
      head.className = "ch";
      head.textContent = c === " " ? "\u00a0" : visible(c);  // the text row reads as text
      var lines = [describe(c)];
      if (unknown.has(t)) {
        head.classList.add("unknown");
        lines[0] += " \u2014 not in the model's vocabulary";
      }
      var came = t > 0 ? data.next_pm[t - 1] : null;  // p(this character) given the text before it
      if (came !== null) {
        var bits = -Math.log2(Math.max(came, 0.01) / 1000), alpha = Math.min(1, bits / 8);
        head.style.background = "rgba(214, 39, 40, " + alpha.toFixed(3) + ")";
        if (alpha > 0.55) head.classList.add("light");
        lines[0] += ": the model gave it " + percent(came) + " (" + bits.toFixed(1) + " bits)";
      }
      col.appendChild(head);
      var guesses = [];
      for (var j = 0; j < K; j++) {
        var id = data.top_ids[t * K + j], pm = data.top_pm[t * K + j], cell = document.createElement("div");
        cell.className = "g";
        if (id >= 0) {
          var guess = data.vocab[id];
          cell.textContent = visible(guess);
          cell.style.background = "rgba(38, 84, 145, " + (pm / 1000).toFixed(3) + ")";
          if (pm > 550) cell.classList.add("dark");
          if (t + 1 < T && guess === chars[t + 1]) cell.classList.add("hit");
          guesses.push(visible(guess) + " " + percent(pm));
        }
        col.appendChild(cell);
      }
      if (guesses.length) lines.push("next: " + guesses.join(", "));
      col.title = lines.join("\n");
      fragment.appendChild(col);
    }
    grid.appendChild(fragment);
  }

  // === Neurons ===
  var layers = data.layers.map(function (layer) {
    var bytes = atob(layer.int8), codes = new Int8Array(bytes.length);
    for (var i = 0; i < bytes.length; i++) codes[i] = bytes.charCodeAt(i);  // (T, H) row-major
    return {index: layer.index, codes: codes};
  });
  var spans = [];
  var layerSelect = document.getElementById("layer-select");
  var unitInput = document.getElementById("unit-input");
  var current = {layer: null, unit: null};

  function buildNeuronText() {
    var box = document.getElementById("neuron-text"), fragment = document.createDocumentFragment();
    for (var t = 0; t < T; t++) {
      var span = document.createElement("span");
      span.textContent = chars[t] === "\n" ? "\u21b5\n" : chars[t];
      if (unknown.has(t)) span.classList.add("unknown");
      spans.push(span);
      fragment.appendChild(span);
    }
    box.appendChild(fragment);
    layers.forEach(function (layer) {
      var option = document.createElement("option");
      option.value = layer.index;
      option.textContent = "layer " + layer.index;
      layerSelect.appendChild(option);
    });
    unitInput.max = H - 1;
    var picks = document.getElementById("picks");
    data.picks.forEach(function (pick) {
      var button = document.createElement("button"), label = document.createElement("b");
      button.type = "button";
      label.textContent = "L" + pick.layer + " \u00b7 U" + pick.unit;
      button.appendChild(label);
      button.appendChild(document.createTextNode(pick.reason));
      button.dataset.layer = pick.layer;
      button.dataset.unit = pick.unit;
      button.addEventListener("click", function () { select(pick.layer, pick.unit); });
      picks.appendChild(button);
    });
  }

  function colour(code) {  // diverging: blue below 0, red above, white at 0
    var v = code / 127, a = Math.abs(v).toFixed(3);
    return v >= 0 ? "rgba(178, 24, 43, " + a + ")" : "rgba(33, 102, 172, " + a + ")";
  }

  function layerByIndex(index) {
    for (var i = 0; i < layers.length; i++) if (layers[i].index === index) return layers[i];
    return null;
  }

  function select(layerIndex, unit, keepHash) {
    var layer = layerByIndex(layerIndex) || layers[0];
    unit = Math.min(H - 1, Math.max(0, unit | 0));
    current = {layer: layer.index, unit: unit};
    layerSelect.value = layer.index;
    unitInput.value = unit;
    for (var t = 0; t < T; t++) {
      var code = layer.codes[t * H + unit], span = spans[t];
      if (code === -128) {
        span.className = "unread" + (unknown.has(t) ? " unknown" : "");
        span.style.background = "";
        span.title = "not read by the model";
        continue;
      }
      span.style.background = colour(code);
      span.classList.toggle("light", Math.abs(code) > 80);
      span.title = describe(chars[t]) + ": " + (code >= 0 ? "+" : "") + (code / 127).toFixed(2);
    }
    var reason = "not on the shortlist";
    Array.prototype.forEach.call(document.querySelectorAll("#picks button"), function (button) {
      var active = +button.dataset.layer === layer.index && +button.dataset.unit === unit;
      button.classList.toggle("active", active);
      if (active) reason = button.lastChild.textContent;
    });
    document.getElementById("unit-title").textContent = "Layer " + layer.index + ", unit " + unit + " \u2014 " + reason;
    var box = document.getElementById("neuron-text");
    box.dataset.layer = layer.index;
    box.dataset.unit = unit;
    if (keepHash) return;
    try { history.replaceState(null, "", "#layer=" + layer.index + "&unit=" + unit); } catch (e) { /* some file: URLs */ }
  }

  function fromHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (!params.has("unit")) return null;
    return {layer: parseInt(params.get("layer") || String(layers[0].index), 10), unit: parseInt(params.get("unit"), 10) || 0};
  }

  renderPredictions();
  buildNeuronText();
  layerSelect.addEventListener("change", function () { select(+layerSelect.value, current.unit); });
  unitInput.addEventListener("change", function () { select(current.layer, +unitInput.value); });
  document.getElementById("unit-prev").addEventListener("click", function () { select(current.layer, current.unit - 1); });
  document.getElementById("unit-next").addEventListener("click", function () { select(current.layer, current.unit + 1); });
  window.addEventListener("hashchange", function () {
    var wanted = fromHash();
    if (wanted) select(wanted.layer, wanted.unit);
  });
  var start = fromHash() || (data.picks.length ? data.picks[0] : {layer: layers[0].index, unit: 0});
  select(start.layer, start.unit, true);  // keeps a #training link working
  if (document.body.getAttribute("data-status") !== "error") document.body.setAttribute("data-status", "ok");
})();
