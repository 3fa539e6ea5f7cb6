// Drawing the live view from its state `ui` into its elements `dom` (see main.js): the text, the
// notes, the maps and the choice panel.
import {LUT, pct, rgb, rgba, show, surpriseAlpha} from "./colors.js";
import {weight, weightOf} from "./protocol.js";
import {charAt, stepProb, windowPositions} from "./run.js";

export function findElements(root) {
  const $ = (sel) => root.querySelector(sel);
  return {root, text: $(".g4k-text"), scrub: $(".g4k-scrub"), play: $(".g4k-play"), stepInfo: $(".g4k-stepinfo"),
          pace: $(".g4k-pace"), surprise: $(".g4k-surprise"), notes: $(".g4k-notes"), hoverInfo: $(".g4k-hoverinfo"),
          selLabel: $(".g4k-sel"), overview: $(".g4k-overview"), big: $(".g4k-bigcanvas"), tip: $(".g4k-tip"),
          cands: $(".g4k-cands"), probsTitle: $(".g4k-probs-title"), scale: $(".g4k-scalecanvas")};
}

// ---- the text -------------------------------------------------------------------------------
export function drawText(dom, ui) {  // a new run: every character as a span
  const run = ui.run;
  dom.text.textContent = "";
  run.spans = [];
  run.promptChars.forEach((ch, i) => addSpan(dom, ui, ch, "p", null, i));
  run.steps.forEach((s, k) => addSpan(dom, ui, s.t, s.forced ? "f" : "g", s.p, run.promptLen + k));
}

export function addSpan(dom, ui, ch, kind, p, pos) {
  const s = document.createElement("span");
  s.textContent = ch;
  s.className = kind;
  s.dataset.pos = pos;
  if (kind !== "p") s.title = p === null ? `forced: ‘${show(ch)}’` : `‘${show(ch)}’: ${pct(p)} likely`;
  paintBase(dom, s, kind, p);
  dom.text.appendChild(s);
  ui.run.spans.push(s);
}

export function paintBase(dom, s, kind, p) {  // surprise: -log2 p bits, shaded amber
  const a = kind === "g" && dom.surprise.checked ? surpriseAlpha(p) : 0;
  s.style.background = a ? `rgba(245,158,11,${a.toFixed(3)})` : "";
}

export function repaintSurprise(dom, ui) {
  if (ui.run) ui.run.spans.forEach((s, i) => paintBase(dom, s, s.className.split(" ")[0], stepProb(ui.run, i)));
}

export function setHidden(ui, upto) {  // characters after step `upto` are hidden (scrubbing back)
  const run = ui.run, end = run.promptLen + upto;
  for (let i = run.promptLen; i < run.spans.length; i++) run.spans[i].classList.toggle("hidden", i >= end);
}

export function renderNotes(dom, ui) {
  dom.notes.textContent = "";
  for (const n of ui.run ? ui.run.notes : []) {
    const d = document.createElement("div");
    d.textContent = n;
    dom.notes.appendChild(d);
  }
}

// Hovering (or pinning) a character paints what it attended to, in the chosen head.
export function highlight(dom, ui, p) {
  const run = ui.run;
  for (const s of dom.text.querySelectorAll(".att, .hov")) {
    s.classList.remove("att", "hov");
    paintBase(dom, s, s.className.split(" ")[0], stepProb(run, +s.dataset.pos));
  }
  ui.hoverPos = p;
  ui.dirty = true;
  const row = p === null ? null : run.rows.get(p);
  if (p === null || !row) {
    dom.hoverInfo.textContent = p === null ? "" : "This character has not been read yet: its attention comes with the next step.";
    return;
  }
  const {layer, head} = ui.sel;
  let best = -1, bestPos = -1;
  for (let k = row.fk; k <= p; k++) {
    const q = weight(row, run.heads, layer, head, k), s = run.spans[k];
    if (q > best) { best = q; bestPos = k; }
    if (!s) continue;
    s.classList.add("att");
    s.style.background = q > 0 ? rgba(q, 0.9) : "";
  }
  if (run.spans[p]) run.spans[p].classList.add("hov");
  const who = head >= 0 ? `layer ${layer + 1}, head ${head + 1}` : `layer ${layer + 1} (mean of heads)`;
  dom.hoverInfo.textContent = `Reading ‘${show(charAt(run, p))}’ (character ${p + 1}), ${who} looked most at ` +
    `‘${show(charAt(run, bestPos))}’ (character ${bestPos + 1}, weight ${weightOf(best).toFixed(2)}). ` +
    "Highlighted: all it looked at.";
}

// ---- the controls and panels, at every frame something changed -------------------------------
export function render(dom, ui) {
  const run = ui.run, busy = run && !run.done;
  dom.scrub.disabled = dom.play.disabled = !run || busy;
  dom.scrub.max = run ? run.steps.length : 0;
  dom.scrub.value = ui.shown;
  dom.stepInfo.textContent = run ? `step ${ui.shown} / ${run.steps.length}${busy ? " …" : ""}` : "step 0";
  dom.play.textContent = ui.following && run && run.done ? "Pause" : "Replay";
  // for tests and benchmarks: empty, streaming (the server is still writing), playing, idle
  dom.root.dataset.state = !run ? "empty" : !run.done ? "streaming" : ui.following ? "playing" : "idle";
  dom.root.dataset.run = run ? run.id : "";
  drawOverview(dom, ui);
  drawBig(dom, ui);
  drawProbs(dom, ui);
}

function overviewCells(dom, run) {  // the grid's labels and one canvas per head (and per layer's mean)
  const cols = run.heads + 1, el = dom.overview;
  if (el.childElementCount === run.layers * (cols + 1) + cols + 1) return;
  el.textContent = "";
  el.style.gridTemplateColumns = `2.2em repeat(${cols}, minmax(0, 1fr))`;
  const label = (text) => el.appendChild(Object.assign(document.createElement("span"), {className: "lab", textContent: text}));
  label("");
  for (let h = 0; h < cols; h++) label(h < run.heads ? `H${h + 1}` : "avg");
  for (let l = 0; l < run.layers; l++) {
    label(`L${l + 1}`);
    for (let h = 0; h < cols; h++) {
      const c = document.createElement("canvas");
      c.dataset.layer = l; c.dataset.head = h < run.heads ? h : -1;
      c.title = h < run.heads ? `layer ${l + 1}, head ${h + 1}` : `layer ${l + 1}, mean of its heads`;
      el.appendChild(c);
    }
  }
}

export function drawOverview(dom, ui) {
  const run = ui.run;
  if (!run) return;
  overviewCells(dom, run);
  const pos = windowPositions(run, ui.shown, ui.hoverPos, 32), n = pos.length;
  for (const c of dom.overview.querySelectorAll("canvas")) {
    const layer = +c.dataset.layer, head = +c.dataset.head;
    c.classList.toggle("sel", layer === ui.sel.layer && head === ui.sel.head);
    if (c.width !== Math.max(n, 1)) { c.width = c.height = Math.max(n, 1); }
    const ctx = c.getContext("2d"), img = ctx.createImageData(c.width, c.height);
    for (let i = 0; i < n; i++) {
      const row = run.rows.get(pos[i]);
      for (let j = 0; j < n; j++) {
        const q = j <= i ? Math.max(0, weight(row, run.heads, layer, head, pos[j])) : 0, o = (i * c.width + j) * 4;
        img.data[o] = LUT[q * 3]; img.data[o + 1] = LUT[q * 3 + 1]; img.data[o + 2] = LUT[q * 3 + 2];
        img.data[o + 3] = j <= i ? 255 : 0;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
}

export function drawBig(dom, ui) {
  const run = ui.run, big = dom.big, ctx = big.getContext("2d"), dpr = window.devicePixelRatio || 1;
  const width = big.clientWidth || 400;
  // As many characters as fit the width and about half the window's height (the overview goes below).
  const label = 22, cell = width < 500 ? 12 : 14;
  const n = Math.max(12, Math.min(32, Math.floor((Math.min(width, 0.46 * window.innerHeight) - label) / cell)));
  const pos = run ? windowPositions(run, ui.shown, ui.hoverPos, n) : [];
  const size = label + cell * Math.max(pos.length, 1);
  big.style.height = `${size}px`;
  if (big.width !== Math.round(width * dpr) || big.height !== Math.round(size * dpr)) {
    big.width = Math.round(width * dpr); big.height = Math.round(size * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, size);
  ui.bigLayout = {pos, cell, label};
  const {layer, head} = ui.sel;
  dom.selLabel.textContent = run ? `layer ${layer + 1} · ${head >= 0 ? `head ${head + 1}` : "mean of heads"}` : "";
  if (!run || !pos.length) return;
  ctx.font = `${cell - 3}px ui-monospace, monospace`;
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  for (let i = 0; i < pos.length; i++) {
    const row = run.rows.get(pos[i]);
    for (let j = 0; j <= i; j++) {
      const q = weight(row, run.heads, layer, head, pos[j]);
      ctx.fillStyle = q < 0 ? "#f5f5f4" : rgb(q);
      ctx.fillRect(label + j * cell, label + i * cell, cell - 1, cell - 1);
    }
    const ch = show(charAt(run, pos[i]));
    ctx.fillStyle = pos[i] === ui.hoverPos ? "#b91c1c" : "#44403c";
    ctx.fillText(ch, label / 2, label + i * cell + cell / 2);  // rows: the character being read
    ctx.fillText(ch, label + i * cell + cell / 2, label / 2);  // columns: the character looked at
  }
  const i = ui.hoverPos === null ? -1 : pos.indexOf(ui.hoverPos);
  if (i >= 0) {
    ctx.strokeStyle = "#1c1917"; ctx.lineWidth = 1.5;
    ctx.strokeRect(label - 0.5, label + i * cell - 0.5, cell * (i + 1), cell);
  }
}

// The map's tooltip for the cell under the pointer, or null outside the drawn cells.
export function cellTip(ui, x, y) {
  const run = ui.run, {pos, cell, label} = ui.bigLayout;
  const i = Math.floor((y - label) / cell), j = Math.floor((x - label) / cell);
  if (i < 0 || j < 0 || i >= pos.length || j > i) return null;
  const q = weight(run.rows.get(pos[i]), run.heads, ui.sel.layer, ui.sel.head, pos[j]);
  return `reading ‘${show(charAt(run, pos[i]))}’ (#${pos[i] + 1}) → ‘${show(charAt(run, pos[j]))}’ (#${pos[j] + 1}): ` +
    (q < 0 ? "outside the context window" : weightOf(q).toFixed(3));
}

export function drawProbs(dom, ui) {
  const run = ui.run, shown = ui.shown;
  dom.cands.textContent = "";
  if (!run || shown < 1) {
    dom.probsTitle.textContent = "The choice at each step appears here: the candidates after temperature, top-k and top-p.";
    return;
  }
  const s = run.steps[shown - 1], chosen = s.t;
  dom.probsTitle.textContent = s.forced
    ? `Step ${shown}: you forced ‘${show(chosen)}’; the model went on from there.`
    : `Step ${shown}: the model wrote ‘${show(chosen)}’, which had ${pct(s.p)} after temperature, top-k and top-p.` +
      (run.done ? " Click another candidate to force it and continue from there." : "");
  let cands = s.c.slice();
  if (!s.forced && !cands.some(([c]) => c === chosen)) cands = cands.slice(0, 9).concat([[chosen, s.p]]);
  for (const [c, p] of cands) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "g4k-cand" + (c === chosen ? " chosen" : "");
    b.disabled = !run.done || c === chosen;
    b.title = c === chosen ? "the character written at this step" : `force ‘${show(c)}’ here and continue`;
    b.innerHTML = `<span class="ch"></span><span class="bar"><i style="width:${(100 * p).toFixed(1)}%"></i></span>` +
      `<span class="pct">${pct(p)}</span>`;
    b.querySelector(".ch").textContent = show(c) + (c === chosen ? " ◀" : "");
    b.dataset.char = c;
    dom.cands.appendChild(b);
  }
}

export function drawScale(dom) {  // the colour scale under the big map
  const c = dom.scale, ctx = c.getContext("2d");
  for (let x = 0; x < c.width; x++) {
    ctx.fillStyle = rgb(Math.round(255 * Math.sqrt(x / (c.width - 1))));
    ctx.fillRect(x, 0, 1, c.height);
  }
}
