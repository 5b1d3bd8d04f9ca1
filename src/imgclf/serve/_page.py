"""The web page at ``/``: plain HTML, CSS and JavaScript served by the app itself (no CDN, no build step).

The page asks ``/v1/model`` for the classes, then posts each picked or dropped image to ``/v1/predict`` and
draws the calibrated top-k as bars, an ``unknown`` badge when the rejection threshold refuses the image, and
the latency, and with the Grad-CAM toggle on, the overlay from ``/v1/explain`` in place of the thumbnail.
"""

INDEX_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imgclf</title>
<link rel="stylesheet" href="/ui/style.css">
<script src="/ui/app.js" defer></script>
</head>
<body>
<header>
  <h1>imgclf</h1>
  <div id="model" data-testid="model">loading model&hellip;</div>
  <form id="token-form" hidden>
    <label>Bearer token <input id="token" type="password" autocomplete="off"></label>
    <button type="submit">Use token</button>
  </form>
</header>
<main>
  <section id="drop" data-testid="drop" tabindex="0">
    <p><strong>Drop images here</strong> or</p>
    <label class="pick">choose files<input id="files" data-testid="files" type="file" accept="image/*" multiple></label>
    <label id="cam-toggle" hidden><input id="cam" type="checkbox"> Grad-CAM overlay</label>
  </section>
  <p id="status" data-testid="status" role="status"></p>
  <section id="results" data-testid="results" aria-live="polite"></section>
</main>
</body>
</html>
"""

STYLE_CSS = """:root { --ink: #1d2a33; --muted: #5c6b75; --line: #d9e0e5; --bg: #f6f8f9; --accent: #2a7f9e;
  --bad: #b3261e; --warn: #a15c00; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: var(--bg); }
header { background: #264653; color: #fff; padding: 14px 28px; display: flex; gap: 24px; align-items: center;
  flex-wrap: wrap; }
header h1 { margin: 0; font-size: 22px; }
#model { color: #d7e3e8; font-size: 13px; }
#token-form { margin-left: auto; font-size: 13px; }
main { max-width: 980px; margin: 0 auto; padding: 20px 28px 48px; }
#drop { border: 2px dashed var(--line); border-radius: 10px; background: #fff; padding: 28px; text-align: center;
  transition: border-color .15s, background .15s; }
#drop.over { border-color: var(--accent); background: #eef7fa; }
#drop p { margin: 0 0 10px; }
.pick { display: inline-block; background: var(--accent); color: #fff; border-radius: 6px; padding: 6px 14px;
  cursor: pointer; }
.pick input { display: none; }
#cam-toggle { display: block; margin-top: 12px; color: var(--muted); font-size: 13px; }
#status { color: var(--muted); min-height: 1.5em; }
#results { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px; display: grid;
  grid-template-columns: 80px 1fr; gap: 12px; }
.card.error { border-color: var(--bad); }
.thumb { width: 80px; height: 80px; object-fit: contain; background: #eceff1; border-radius: 6px;
  image-rendering: pixelated; }
.name { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.label { font-size: 18px; font-weight: 600; }
.badge { display: inline-block; font-size: 11px; font-weight: 700; letter-spacing: .04em; text-transform: uppercase;
  border-radius: 4px; padding: 1px 6px; margin-left: 6px; vertical-align: middle; }
.badge.unknown { background: var(--warn); color: #fff; }
.bars { margin-top: 6px; }
.bar { display: grid; grid-template-columns: minmax(40px, 80px) 1fr 46px; gap: 6px; align-items: center;
  font-size: 12.5px; }
.bar .track { background: #e7edf0; border-radius: 3px; height: 10px; overflow: hidden; }
.bar .fill { background: var(--accent); height: 100%; }
.bar .pct { text-align: right; font-variant-numeric: tabular-nums; }
.bar .cls { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.latency { margin-top: 6px; font-size: 12px; color: var(--muted); }
.err { color: var(--bad); font-size: 13px; }
"""

APP_JS = r"""'use strict';
(() => {
  const $ = (sel) => document.querySelector(sel);
  const state = { token: sessionStorage.getItem('imgclf-token') || '', model: null };

  function headers() {
    return state.token ? { Authorization: 'Bearer ' + state.token } : {};
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function askToken(message) {
    $('#token-form').hidden = false;
    $('#status').textContent = message;
  }

  async function loadModel() {
    const res = await fetch('/v1/model', { headers: headers() });
    if (res.status === 401) { askToken('This server needs a bearer token.'); return; }
    if (!res.ok) { $('#status').textContent = 'Cannot read the model: HTTP ' + res.status; return; }
    state.model = await res.json();
    const m = state.model;
    $('#model').textContent = m.architecture + ' \u00b7 ' + m.num_classes + ' classes \u00b7 version ' +
      m.version.slice(0, 12) + (m.rejection_active ? ' \u00b7 rejects unknowns' : '');
    $('#cam-toggle').hidden = !m.explain;
    $('#status').textContent = 'Ready.';
  }

  // With the toggle on, ask /v1/explain for a Grad-CAM overlay of the predicted class and show it instead.
  async function renderOverlay(card, file) {
    if (!$('#cam').checked) return;
    const body = new FormData();
    body.append('file', file, file.name);
    const res = await fetch('/v1/explain', { method: 'POST', body, headers: headers() });
    if (!res.ok) return;
    const payload = await res.json();
    const thumb = card.querySelector('.thumb');
    thumb.src = payload.overlay;
    thumb.dataset.testid = 'overlay';
    thumb.title = 'Grad-CAM: where the model looked for its answer';
  }

  function renderPrediction(card, p, latencyMs) {
    const info = card.querySelector('.info');
    const label = el('div', 'label');
    label.dataset.testid = 'label';
    // multi-label: every predicted label; hierarchical: the path, and the leaf when the answer backed off
    label.textContent = p.labels ? (p.labels.length ? p.labels.join(', ') : '(no label)') : p.label;
    if (p.ancestors && p.leaf !== p.label) label.textContent += ' (unsure leaf: ' + p.leaf + ')';
    if (p.ancestors) {
      const path = el('div', 'latency', [...p.ancestors.slice(1), p.leaf].join(' \u203a '));
      path.dataset.testid = 'path';
      info.appendChild(path);
    }
    if (p.unknown) {
      const badge = el('span', 'badge unknown', 'unknown');
      badge.dataset.testid = 'unknown-badge';
      badge.title = 'The OOD score ' + (p.ood_score === null ? '' : p.ood_score.toFixed(3)) +
        ' is below the bundle\'s rejection threshold: the model does not know this kind of image.';
      label.appendChild(badge);
    }
    info.appendChild(label);
    const bars = el('div', 'bars');
    const shown = p.labels
      ? Object.entries(p.scores).sort((a, b) => b[1] - a[1]).slice(0, 10).map(([l, s]) => ({label: l, score: s}))
      : p.topk;
    for (const t of shown) {
      const row = el('div', 'bar');
      row.dataset.testid = 'bar';
      const pct = (100 * t.score);
      row.appendChild(el('span', 'cls', t.label));
      const track = el('span', 'track');
      const fill = el('span', 'fill');
      fill.style.display = 'block';
      fill.style.width = pct.toFixed(1) + '%';
      track.appendChild(fill);
      row.appendChild(track);
      row.appendChild(el('span', 'pct', pct.toFixed(1) + '%'));
      bars.appendChild(row);
    }
    info.appendChild(bars);
    const lat = el('div', 'latency', 'latency ' + latencyMs.toFixed(1) + ' ms (server) ');
    lat.dataset.testid = 'latency';
    info.appendChild(lat);
  }

  async function classify(file) {
    const card = el('article', 'card');
    card.dataset.testid = 'result';
    const img = el('img', 'thumb');
    img.alt = file.name;
    img.src = URL.createObjectURL(file);
    card.appendChild(img);
    const info = el('div', 'info');
    info.appendChild(el('div', 'name', file.name));
    card.appendChild(info);
    $('#results').prepend(card);
    const body = new FormData();
    body.append('file', file, file.name);
    const started = performance.now();
    let res;
    try {
      res = await fetch('/v1/predict', { method: 'POST', body, headers: headers() });
    } catch (e) {
      card.classList.add('error');
      info.appendChild(el('div', 'err', 'Network error: ' + e));
      return;
    }
    const payload = await res.json().catch(() => ({}));
    if (res.status === 401) { askToken('This server needs a bearer token.'); }
    if (!res.ok) {
      card.classList.add('error');
      const err = el('div', 'err', 'HTTP ' + res.status + ': ' + (payload.detail || res.statusText));
      err.dataset.testid = 'error';
      info.appendChild(err);
      return;
    }
    renderPrediction(card, payload.predictions[0], payload.latency_ms);
    card.querySelector('.latency').textContent += '\u00b7 ' + (performance.now() - started).toFixed(0) +
      ' ms round trip';
    await renderOverlay(card, file);
  }

  function handle(files) {
    const list = Array.from(files).filter((f) => f.size >= 0);
    if (!list.length) return;
    $('#status').textContent = 'Classifying ' + list.length + ' image' + (list.length > 1 ? 's' : '') + '\u2026';
    Promise.all(list.map(classify)).then(() => { $('#status').textContent = 'Done.'; });
  }

  document.addEventListener('DOMContentLoaded', () => {
    const drop = $('#drop');
    ['dragenter', 'dragover'].forEach((ev) => drop.addEventListener(ev, (e) => {
      e.preventDefault(); drop.classList.add('over');
    }));
    ['dragleave', 'drop'].forEach((ev) => drop.addEventListener(ev, (e) => {
      e.preventDefault(); drop.classList.remove('over');
    }));
    drop.addEventListener('drop', (e) => handle(e.dataTransfer.files));
    $('#files').addEventListener('change', (e) => { handle(e.target.files); e.target.value = ''; });
    $('#token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      state.token = $('#token').value.trim();
      sessionStorage.setItem('imgclf-token', state.token);
      $('#token-form').hidden = true;
      loadModel();
    });
    loadModel();
  });
})();
"""
