// Drawing the live view from its state `ui` into its elements `dom` (see main.js): the text, the
// notes, the maps and the choice panel.
import {LUT, SURPRISE_RGB, pct, rgb, show, surpriseAlpha, underline} from "./colors.js";
import {weight, weightOf} from "./protocol.js";
import {charAt, explainedStep, firstDifference, stepProb, windowPositions, written} from "./run.js";

export function findElements(root) {
  const $ = (sel) => root.querySelector(sel);
  return {root, text: $(".g4k-text"), scrub: $(".g4k-scrub"), play: $(".g4k-play"), stepInfo: $(".g4k-stepinfo"),
          pace: $(".g4k-pace"), surprise: $(".g4k-surprise"), notes: $(".g4k-notes"), hoverInfo: $(".g4k-hoverinfo"),
          selLabel: $(".g4k-sel"), overview: $(".g4k-overview"), big: $(".g4k-bigcanvas"), tip: $(".g4k-tip"),
          cands: $(".g4k-cands"), probsTitle: $(".g4k-probs-title"), scale: $(".g4k-scalecanvas"),
          lens: $(".g4k-lens"), dla: $(".g4k-dla"), knockAdd: $(".g4k-knock-add"), knocked: $(".g4k-knocked"),
          knockRun: $(".g4k-knock-run"), knockKeep: $(".g4k-knock-keep"), knockClear: $(".g4k-knock-clear"),
          versus: $(".g4k-versus"), versusTitle: $(".g4k-versus-title"), versusA: $(".g4k-versus-a"),
          versusB: $(".g4k-versus-b"), versusBHead: $(".g4k-versus-bhead"), undo: $(".g4k-undo"),
          headSel: $(".g4k-headsel"), toGrid: $(".g4k-to-grid"), own: $(".g4k-own"), copyLink: $(".g4k-copy-link"),
          saveRun: $(".g4k-save-run"), loadRun: $(".g4k-load-run"), loadFile: $(".g4k-load-file"),
          savePng: $(".g4k-save-png"), keepInfo: $(".g4k-keep-info")};
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
  s.className = ch === "\n" ? `${kind} nl` : kind;  // the kind first: paintBase reads it back
  s.dataset.pos = pos;
  if (kind !== "p") s.title = p === null ? `forced: ‘${show(ch)}’` : `‘${show(ch)}’: ${pct(p)} likely`;
  paintBase(dom, s, kind, p);
  dom.text.appendChild(s);
  ui.run.spans.push(s);
}

export function paintBase(dom, s, kind, p) {  // surprise: -log2 p bits, shaded amber
  const a = kind === "g" && dom.surprise.checked ? surpriseAlpha(p) : 0;
  s.style.background = a ? `rgba(${SURPRISE_RGB},${a.toFixed(3)})` : "";
  s.style.textDecoration = "";
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

// Hovering, pinning or moving the cursor to a character underlines what it attended to, in the chosen head.
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
    const mark = underline(q);
    if (!s || !mark) continue;
    s.classList.add("att");
    s.style.textDecoration = `underline solid ${mark.colour} ${mark.px}px`;
  }
  if (run.spans[p]) run.spans[p].classList.add("hov");
  const who = head >= 0 ? `layer ${layer + 1}, head ${head + 1}` : `layer ${layer + 1} (mean of heads)`;
  dom.hoverInfo.textContent = `Reading ‘${show(charAt(run, p))}’ (character ${p + 1}), ${who} looked most at ` +
    `‘${show(charAt(run, bestPos))}’ (character ${bestPos + 1}, weight ${weightOf(best).toFixed(2)}). ` +
    "Underlined: all it looked at, the thicker the more.";
}

// ---- the controls and panels, at every frame something changed -------------------------------
export function render(dom, ui) {
  const run = ui.run, busy = run && !run.done;
  dom.scrub.disabled = dom.play.disabled = !run || busy;
  dom.scrub.max = run ? run.steps.length : 0;
  dom.scrub.value = ui.shown;
  const total = run && run.settings ? run.settings.chars : "…";
  dom.stepInfo.textContent = !run ? "step 0" : busy ? `writing… ${ui.shown} / ${total}`
    : `${ui.following ? "showing" : "step"} ${ui.shown} / ${run.steps.length}`;
  dom.play.textContent = ui.following && run && run.done ? "Pause" : "Replay";
  // for tests and benchmarks: empty, streaming (the server is still writing), playing, idle
  dom.root.dataset.state = !run ? "empty" : !run.done ? "streaming" : ui.following ? "playing" : "idle";
  dom.root.dataset.run = run ? run.id : "";
  drawOverview(dom, ui);
  drawBig(dom, ui);
  drawProbs(dom, ui);
  drawLens(dom, ui);
  drawPushes(dom, ui);
  drawKnock(dom, ui);
  drawVersus(dom, ui);
  drawHeadChoice(dom, ui);
  drawKeep(dom, ui);
}

// The line on how well the model reads its own text (Compare), and what can be kept of the run.
function drawKeep(dom, ui) {
  const run = ui.run, own = run && run.own;
  dom.own.textContent = own ? `Read back by the model that wrote it: ${own[0].toFixed(2)} nats a character ` +
    `(${(own[0] / Math.LN2).toFixed(2)} bits) over its ${own[1].toLocaleString("en")} characters.` : "";
  dom.copyLink.disabled = !run || !run.done || !run.settings;
  dom.saveRun.disabled = !run || !run.done;
  dom.savePng.disabled = !run;
}

// The head menu beside the map: the same choice as the grid, for a keyboard or a narrow column.
function drawHeadChoice(dom, ui) {
  const run = ui.run, sel = dom.headSel;
  sel.hidden = !run;
  if (!run) return;
  const shape = `${run.layers}x${run.heads}`;
  if (sel.dataset.shape !== shape) {
    sel.dataset.shape = shape;
    sel.textContent = "";
    for (let l = 0; l < run.layers; l++) {
      for (let h = -1; h < run.heads; h++) {
        const o = document.createElement("option");
        o.value = `${l}:${h}`;
        o.textContent = h >= 0 ? `layer ${l + 1}, head ${h + 1}` : `layer ${l + 1}, mean of heads`;
        sel.appendChild(o);
      }
    }
  }
  sel.value = `${ui.sel.layer}:${ui.sel.head}`;
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
      const cell = Object.assign(document.createElement("div"), {className: "head"});
      const c = document.createElement("canvas");
      cell.dataset.layer = c.dataset.layer = l;
      cell.dataset.head = c.dataset.head = h < run.heads ? h : -1;
      c.title = h < run.heads ? `layer ${l + 1}, head ${h + 1}` : `layer ${l + 1}, mean of its heads`;
      c.setAttribute("role", "radio");
      cell.append(c, Object.assign(document.createElement("span"), {className: "badge"}));
      el.appendChild(cell);
    }
  }
}

export const headName = (layer, head) => `L${layer + 1}H${head + 1}`;

export function drawOverview(dom, ui) {
  const run = ui.run;
  if (!run) return;
  overviewCells(dom, run);
  const pos = windowPositions(run, ui.shown, ui.hoverPos, 32), n = pos.length;
  for (const c of dom.overview.querySelectorAll("canvas")) {
    const layer = +c.dataset.layer, head = +c.dataset.head, cell = c.parentElement;
    const chosen = layer === ui.sel.layer && head === ui.sel.head;
    c.classList.toggle("sel", chosen);
    c.tabIndex = chosen ? 0 : -1;
    c.setAttribute("aria-checked", String(chosen));
    const role = head >= 0 && run.roles ? run.roles[layer * run.heads + head] : null;
    const badge = role ? `${SHORT_ROLE[role[0]] || role[0]} ${role[1].toFixed(2).replace(/^0/, "")}` : "";
    cell.querySelector(".badge").textContent = badge;
    c.setAttribute("aria-label", c.title + (role ? `: ${role[0]} ${role[1].toFixed(2)}` : ""));
    cell.classList.toggle("knocked", head >= 0 && ui.knock.has(headName(layer, head)));
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
  const label = 22, cell = width < 500 ? 15 : 16;  // labels of 12-13 px, readable on a phone too
  const share = window.innerWidth <= 820 ? 0.3 : 0.46;
  const n = Math.max(12, Math.min(32, Math.floor((Math.min(width, share * window.innerHeight) - label) / cell)));
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
  ctx.font = `${cell - 3}px ui-monospace, monospace`;  // 12 px at the least
  big.dataset.font = cell - 3;  // (the tests read it: a canvas has no computed style)
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
    b.setAttribute("aria-label", c === chosen ? `‘${show(c)}’, ${pct(p)}: written` : `force ‘${show(c)}’, ${pct(p)}`);
    b.dataset.char = c;
    dom.cands.appendChild(b);
  }
}

const SHORT_ROLE = {"prev char": "prev", "self": "self", "word start": "word", "induction": "copy",
                    "line start": "line", "punctuation": "punc", "spread": "wide"};

// The step the lens and the pushes explain ({k, s}: its number and the step; s null before any).
function explained(ui) {
  const run = ui.run, k = run ? explainedStep(run, ui.shown, ui.hoverPos) : null;
  return {k, s: k ? run.steps[k - 1] : null};
}

// True when ``el`` must be drawn again for ``key`` (what it shows), and from now on it shows that.
function stale(el, key) {
  if (el.dataset.key === key) return false;
  el.dataset.key = key;
  return true;
}

// The logit lens of the explained step: per layer its likeliest characters, the written one in bold.
export function drawLens(dom, ui) {
  const {k, s} = explained(ui), key = s && s.l ? `${ui.run.id}:${k}` : "";
  if (!stale(dom.lens, key)) return;  // drawn already: the step shown did not change
  dom.lens.textContent = "";
  if (!key) return;
  s.l.forEach((row, layer) => {
    const tr = dom.lens.insertRow();
    const th = document.createElement("th");
    th.textContent = layer === 0 ? "embedding" : layer === s.l.length - 1 ? `after L${layer} (output)` : `after L${layer}`;
    tr.appendChild(th);
    for (const [c, p] of row) {
      const td = tr.insertCell();
      td.textContent = `${show(c)} ${pct(p)}`;
      if (c === s.t) td.className = "written";
    }
  });
  dom.lens.dataset.step = k;
}

// Each head's direct push on the explained step's written character, as a strip over the heads.
export function drawPushes(dom, ui) {
  const {k, s} = explained(ui), run = ui.run, key = s && s.a ? `${run.id}:${k}` : "";
  if (!stale(dom.dla, key)) return;
  dom.dla.textContent = "";
  if (!key) return;
  dom.dla.style.gridTemplateColumns = `2.2em repeat(${run.heads}, minmax(0, 1fr))`;
  const top = Math.max(1e-6, ...s.a.flat().map(Math.abs));
  const cell = (text, cls, title) => dom.dla.appendChild(Object.assign(document.createElement("span"),
    {className: cls, textContent: text, title: title || ""}));
  cell("", "lab");
  for (let h = 0; h < run.heads; h++) cell(`H${h + 1}`, "lab");
  s.a.forEach((row, layer) => {
    cell(`L${layer + 1}`, "lab");
    row.forEach((v, h) => {
      const el = cell(v.toFixed(2), "push", `${headName(layer, h)} pushed ‘${show(s.t)}’ by ${v >= 0 ? "+" : ""}${v.toFixed(3)}`);
      const a = Math.min(1, Math.abs(v) / top);
      // dark text on a shade of 60% at most: 4.5:1 or more at every push (axe checks it)
      el.style.background = v >= 0 ? `rgba(37,99,235,${(0.6 * a).toFixed(3)})` : `rgba(234,88,12,${(0.6 * a).toFixed(3)})`;
    });
  });
  dom.dla.dataset.step = k;
}

// The knock-out bar: the chosen heads and what can be done with them.
export function drawKnock(dom, ui) {
  const run = ui.run, ready = run && run.done, head = ui.sel.head;
  dom.knocked.textContent = ui.knock.size ? [...ui.knock].join(", ") : "none chosen";
  dom.knockAdd.disabled = !run || head < 0;
  dom.knockAdd.textContent = head >= 0 && ui.knock.has(headName(ui.sel.layer, head))
    ? `Put ${headName(ui.sel.layer, head)} back` : head >= 0 ? `Knock out ${headName(ui.sel.layer, head)}`
    : "Knock out the enlarged head";
  dom.knockRun.disabled = dom.knockKeep.disabled = !ready || !ui.knock.size;
  dom.knockClear.disabled = !ui.knock.size;
}

// A knock-out or a branch beside the text it came from (the newest in ui.history), the first
// character where they part marked; Undo goes back to that text.
export function drawVersus(dom, ui) {
  const run = ui.run, before = ui.history.at(-1);
  dom.versus.hidden = !(run && before);
  if (dom.versus.hidden) return;
  dom.undo.disabled = !run.done;
  const a = written(before), b = written(run).slice(0, ui.shown), fork = firstDifference(a, b);
  if (!stale(dom.versus, `${run.id}:${before.id}:${b.length}:${run.loss ? 1 : 0}`)) return;
  fillVersus(dom.versusA, before.prompt, a, fork);
  fillVersus(dom.versusB, run.prompt, b, fork);
  const forced = run.knockout ? null : run.lineage.forces.at(-1);
  dom.versusBHead.textContent = forced ? `With ‘${show(forced[1])}’ forced at step ${forced[0]}`
    : `Without ${run.knockout.split(",").join(", ")}`;
  const parted = fork < 0 ? (b.length < a.length ? "The same so far." : "The same text.")
    : `They part at step ${fork + 1}: ‘${show(Array.from(a)[fork] || "")}’ before, ‘${show(Array.from(b)[fork])}’ ` +
      (forced ? "forced." : "without.");
  const loss = run.loss ? ` On ${run.loss[2].toLocaleString("en")} characters of the model's own writing: ` +
    `${run.loss[0].toFixed(2)} → ${run.loss[1].toFixed(2)} nats/char.` : "";
  dom.versusTitle.textContent = parted + loss;
  dom.versus.dataset.fork = fork;
}

function fillVersus(el, prompt, text, fork) {
  el.textContent = prompt;
  const chars = Array.from(text);
  const before = fork < 0 ? chars : chars.slice(0, fork);
  el.appendChild(Object.assign(document.createElement("span"), {className: "after", textContent: before.join("")}));
  if (fork >= 0 && fork < chars.length) {
    el.appendChild(Object.assign(document.createElement("span"), {className: "after fork", textContent: chars[fork]}));
    el.appendChild(Object.assign(document.createElement("span"), {className: "after", textContent: chars.slice(fork + 1).join("")}));
  }
}

export function drawScale(dom) {  // the colour scale under the big map
  const c = dom.scale, ctx = c.getContext("2d");
  for (let x = 0; x < c.width; x++) {
    ctx.fillStyle = rgb(Math.round(255 * Math.sqrt(x / (c.width - 1))));
    ctx.fillRect(x, 0, 1, c.height);
  }
}
