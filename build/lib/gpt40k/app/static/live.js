// The live view: runs in the browser as gr.HTML's js_on_load (element, props, trigger, watch).
// The server streams one small message per step (gpt40k/app/stepstream.py); everything drawn
// here, including scrubbing and switching heads, needs no round trip to the server.
const root = element.querySelector(".g4k");
const $ = (sel) => root.querySelector(sel);
const textEl = $(".g4k-text"), scrub = $(".g4k-scrub"), playBtn = $(".g4k-play"), stepInfo = $(".g4k-stepinfo");
const paceSel = $(".g4k-pace"), surpriseBox = $(".g4k-surprise"), notesEl = $(".g4k-notes");
const hoverInfo = $(".g4k-hoverinfo"), selLabel = $(".g4k-sel"), overview = $(".g4k-overview");
const big = $(".g4k-bigcanvas"), tip = $(".g4k-tip"), candsEl = $(".g4k-cands"), probsTitle = $(".g4k-probs-title");
paceSel.value = root.dataset.pace || "35";

// Colour of an attention weight, indexed by its byte q = 255 * sqrt(w): white to dark red.
const STOPS = [[255, 255, 255], [254, 224, 200], [252, 146, 114], [222, 45, 38], [120, 0, 10]];
const LUT = new Uint8ClampedArray(256 * 3);
for (let q = 0; q < 256; q++) {
  const x = (q / 255) * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  for (let c = 0; c < 3; c++) LUT[q * 3 + c] = STOPS[i][c] + f * (STOPS[i + 1][c] - STOPS[i][c]);
}
const rgb = (q) => `rgb(${LUT[q * 3]},${LUT[q * 3 + 1]},${LUT[q * 3 + 2]})`;
const SHOW = {"\n": "⏎", " ": "␣", "\t": "⇥"};
const show = (c) => SHOW[c] || c;
const pct = (p) => (p < 0.001 ? "<0.1" : p >= 0.995 ? "100" : p >= 0.1 ? (100 * p).toFixed(0) : (100 * p).toFixed(1)) + "%";

let run = null;          // the run on the page: header, characters, attention rows
let startRaw = null;
let shown = 0;           // steps revealed
let following = false;  // revealing steps as they arrive, at the chosen pace
let allowance = 0, lastTick = 0;
let sel = {layer: 0, head: 0};  // head === -1: the layer's mean over heads
let hoverPos = null, pinned = null, dirty = true;

function newRun(h) {
  const kept = h.branch && run ? run : null;
  const prompt = Array.from(kept ? run.prompt : h.prompt);  // code points, as the server counts positions
  const r = {id: h.run, layers: h.layers, heads: h.heads, block: h.block, prompt: kept ? run.prompt : h.prompt,
             promptLen: prompt.length, promptChars: prompt, steps: [], rows: new Map(), base: 0, done: false, stopped: false,
             notes: h.notes || []};
  if (kept) {  // a branch: keep the steps before the forced one, then the forced character
    r.steps = run.steps.slice(0, h.keep);
    for (const [p, row] of run.rows) if (p < r.promptLen + h.keep) r.rows.set(p, row);
    const forced = Array.from(h.prompt).pop(), orig = run.steps[h.keep];
    r.steps.push({t: forced, p: null, c: orig ? orig.c : [], forced: true});
    r.base = h.keep + 1;
  }
  run = r;
  textEl.textContent = "";
  run.spans = [];
  prompt.forEach((ch, i) => addSpan(ch, "p", null, i));
  run.steps.forEach((s, k) => addSpan(s.t, s.forced ? "f" : "g", s.p, run.promptLen + k));
  shown = kept ? run.steps.length : 0;
  following = true; allowance = 1; pinned = null; hoverPos = null;
  setHidden(shown);
  renderNotes();
  dirty = true;
  const box = textEl.getBoundingClientRect();  // a new run: bring the text into view (phones: below the settings)
  if (box.top < 0 || box.bottom > window.innerHeight) textEl.scrollIntoView({block: "center"});
}

function addSpan(ch, kind, p, pos) {
  const s = document.createElement("span");
  s.textContent = ch;
  s.className = kind;
  s.dataset.pos = pos;
  if (kind !== "p") s.title = p === null ? `forced: ‘${show(ch)}’` : `‘${show(ch)}’: ${pct(p)} likely`;
  paintBase(s, kind, p);
  textEl.appendChild(s);
  run.spans.push(s);
}

function paintBase(s, kind, p) {  // surprise: -log2 p bits, shaded amber
  s.style.background = "";
  if (kind === "g" && surpriseBox.checked && p !== null && p !== undefined) {
    const a = Math.min(0.7, Math.max(0, -Math.log2(Math.max(p, 1e-6)) / 9));
    if (a > 0.03) s.style.background = `rgba(245,158,11,${a.toFixed(3)})`;
  }
}

function b64bytes(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function addStep(m) {
  if (!run || run.stopped) return;
  const k = run.base + m.i;  // 1-based step number on the page
  if (k <= run.steps.length) return;  // had it already
  if (k > run.steps.length + 1) {  // a step went missing on the way: say so rather than draw a wrong text
    run.stopped = run.done = true;
    run.notes = run.notes.concat([`Steps ${run.steps.length + 1}-${k - 1} were lost on the way; press Generate again.`]);
    renderNotes();
    return;
  }
  run.steps[k - 1] = {t: m.t, p: m.p, c: m.c};
  for (const [pos, fk, data] of m.r) run.rows.set(pos, {fk, n: pos - fk + 1, q: b64bytes(data)});
  if (run.spans.length < run.promptLen + k) addSpan(m.t, "g", m.p, run.promptLen + k - 1);
  run.spans[run.promptLen + k - 1].classList.add("hidden");
}

function onValue() {
  const v = props.value;
  if (!v) return;
  if (Array.isArray(v)) {
    if (!v.length) return;
    if (v[0] !== startRaw) {
      startRaw = v[0];
      newRun(JSON.parse(v[0]));
    }
    for (let i = 1; i < v.length; i++) addStep(JSON.parse(v[i]));  // the steps new since the last update
  } else if (v.kind === "error") {
    if (run && !run.done) { run.done = true; following = false; }
    if (run) { run.notes = run.notes.concat([v.message]); renderNotes(); }
    else notesEl.textContent = v.message;
  } else if (v.kind === "end" && run && v.run === run.id && !run.stopped) {
    run.done = true;
    run.notes = v.notes || run.notes;
    renderNotes();
  }
  dirty = true;
}

function stopNow() {  // Stop: freeze at what is shown; later messages of this run are ignored
  if (!run || (run.done && !following) || run.stopped) return;
  run.stopped = run.done = true;
  following = false;
  run.steps.length = shown;
  run.spans.splice(run.promptLen + shown).forEach((s) => s.remove());
  run.notes = run.notes.concat([`Stopped after ${shown} characters.`]);
  renderNotes();
  dirty = true;
}

function renderNotes() {
  notesEl.textContent = "";
  for (const n of run ? run.notes : []) {
    const d = document.createElement("div");
    d.textContent = n;
    notesEl.appendChild(d);
  }
}

function setHidden(upto) {  // characters after step `upto` are hidden (scrubbing back)
  if (!run) return;
  const end = run.promptLen + upto;
  for (let i = run.promptLen; i < run.spans.length; i++) run.spans[i].classList.toggle("hidden", i >= end);
}

function setShown(s) {
  s = Math.max(0, Math.min(s, run ? run.steps.length : 0));
  if (s === shown) return;
  const end = run.promptLen;
  if (s > shown) for (let i = end + shown; i < end + s; i++) run.spans[i].classList.remove("hidden");
  else for (let i = end + s; i < end + shown; i++) run.spans[i].classList.add("hidden");
  shown = s;
  dirty = true;
}

// ---- the reveal loop: one frame at a time, at the chosen pace -----------------------------
function frame(now) {
  const dt = lastTick ? Math.min(0.25, (now - lastTick) / 1000) : 0;
  lastTick = now;
  if (run && following) {
    const pace = Number(paceSel.value);
    const available = run.steps.length;
    if (pace === 0) setShown(available);
    else {
      allowance = Math.min(allowance + dt * pace, 2);  // never a burst: at most 2 characters a frame
      const n = Math.min(Math.floor(allowance), available - shown);
      if (n > 0) { allowance -= n; setShown(shown + n); }
    }
    if (shown >= available && run.done && following) { following = false; dirty = true; }
    if (dirty) textEl.scrollTop = textEl.scrollHeight;
  }
  if (dirty) { dirty = false; render(); }
  if (element.isConnected) requestAnimationFrame(frame);
}

// ---- drawing --------------------------------------------------------------------------------
function lastRead() {  // the newest character whose attention row is shown at this step
  if (!run) return -1;
  let p = run.promptLen + Math.max(shown, 1) - 2;
  while (p >= 0 && !run.rows.has(p)) p--;
  return p;
}

function weight(row, layer, head, key) {  // the byte (sqrt scale) of one weight; -1: outside the window
  if (!row || key < row.fk || key >= row.fk + row.n) return -1;
  if (head >= 0) return row.q[(layer * run.heads + head) * row.n + key - row.fk];
  let sum = 0;
  for (let h = 0; h < run.heads; h++) { const q = row.q[(layer * run.heads + h) * row.n + key - row.fk]; sum += q * q; }
  return Math.round(Math.sqrt(sum / run.heads));
}

function render() {
  const busy = run && !run.done;
  scrub.disabled = playBtn.disabled = !run || busy;
  scrub.max = run ? run.steps.length : 0;
  scrub.value = shown;
  stepInfo.textContent = run ? `step ${shown} / ${run.steps.length}${busy ? " …" : ""}` : "step 0";
  playBtn.textContent = following && run && run.done ? "Pause" : "Replay";
  // for tests and benchmarks: empty, streaming (the server is still writing), playing, idle
  root.dataset.state = !run ? "empty" : !run.done ? "streaming" : following ? "playing" : "idle";
  root.dataset.run = run ? run.id : "";
  drawOverview();
  drawBig();
  drawProbs();
}

function windowPositions(n) {
  const end = hoverPos !== null && run.rows.has(hoverPos) ? Math.max(hoverPos, lastRead()) : lastRead();
  const last = hoverPos !== null && hoverPos < end - n + 1 ? hoverPos + Math.floor(n / 2) : end;
  const out = [];
  for (let p = Math.max(0, Math.min(last, end) - n + 1); p <= Math.min(last, end); p++) out.push(p);
  return out;
}

function drawOverview() {
  if (!run) return;
  const cols = run.heads + 1;
  if (overview.childElementCount !== (run.layers * (cols + 1)) + cols + 1) {
    overview.textContent = "";
    overview.style.gridTemplateColumns = `2.2em repeat(${cols}, minmax(0, 1fr))`;
    overview.appendChild(Object.assign(document.createElement("span"), {className: "lab"}));
    for (let h = 0; h < cols; h++)
      overview.appendChild(Object.assign(document.createElement("span"), {className: "lab", textContent: h < run.heads ? `H${h + 1}` : "avg"}));
    for (let l = 0; l < run.layers; l++) {
      overview.appendChild(Object.assign(document.createElement("span"), {className: "lab", textContent: `L${l + 1}`}));
      for (let h = 0; h < cols; h++) {
        const c = document.createElement("canvas");
        c.dataset.layer = l; c.dataset.head = h < run.heads ? h : -1;
        c.title = h < run.heads ? `layer ${l + 1}, head ${h + 1}` : `layer ${l + 1}, mean of its heads`;
        overview.appendChild(c);
      }
    }
  }
  const pos = windowPositions(32), n = pos.length;
  for (const c of overview.querySelectorAll("canvas")) {
    const layer = +c.dataset.layer, head = +c.dataset.head;
    c.classList.toggle("sel", layer === sel.layer && head === sel.head);
    if (c.width !== Math.max(n, 1)) { c.width = c.height = Math.max(n, 1); }
    const ctx = c.getContext("2d"), img = ctx.createImageData(c.width, c.height);
    for (let i = 0; i < n; i++) {
      const row = run.rows.get(pos[i]);
      for (let j = 0; j < n; j++) {
        const q = j <= i ? Math.max(0, weight(row, layer, head, pos[j])) : 0, o = (i * c.width + j) * 4;
        img.data[o] = LUT[q * 3]; img.data[o + 1] = LUT[q * 3 + 1]; img.data[o + 2] = LUT[q * 3 + 2];
        img.data[o + 3] = j <= i ? 255 : 0;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
}

let bigLayout = null;
function drawBig() {
  const ctx = big.getContext("2d"), dpr = window.devicePixelRatio || 1;
  const width = big.clientWidth || 400;
  // As many characters as fit the width and about half the window's height (the overview goes below).
  const label = 22, cell = width < 500 ? 12 : 14;
  const n = Math.max(12, Math.min(32, Math.floor((Math.min(width, 0.46 * window.innerHeight) - label) / cell)));
  const pos = run ? windowPositions(n) : [];
  const size = label + cell * Math.max(pos.length, 1);
  big.style.height = `${size}px`;
  if (big.width !== Math.round(width * dpr) || big.height !== Math.round(size * dpr)) {
    big.width = Math.round(width * dpr); big.height = Math.round(size * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, size);
  bigLayout = {pos, cell, label};
  selLabel.textContent = run ? `layer ${sel.layer + 1} · ${sel.head >= 0 ? `head ${sel.head + 1}` : "mean of heads"}` : "";
  if (!run || !pos.length) return;
  ctx.font = `${cell - 3}px ui-monospace, monospace`;
  ctx.textAlign = "center"; ctx.textBaseline = "middle";
  for (let i = 0; i < pos.length; i++) {
    const row = run.rows.get(pos[i]);
    for (let j = 0; j <= i; j++) {
      const q = weight(row, sel.layer, sel.head, pos[j]);
      ctx.fillStyle = q < 0 ? "#f5f5f4" : rgb(q);
      ctx.fillRect(label + j * cell, label + i * cell, cell - 1, cell - 1);
    }
    const ch = show(charAt(pos[i]));
    ctx.fillStyle = pos[i] === hoverPos ? "#b91c1c" : "#44403c";
    ctx.fillText(ch, label / 2, label + i * cell + cell / 2);  // rows: the character being read
    ctx.fillText(ch, label + i * cell + cell / 2, label / 2);  // columns: the character looked at
  }
  if (hoverPos !== null) {
    const i = pos.indexOf(hoverPos);
    if (i >= 0) { ctx.strokeStyle = "#1c1917"; ctx.lineWidth = 1.5; ctx.strokeRect(label - 0.5, label + i * cell - 0.5, cell * (i + 1), cell); }
  }
}

function charAt(p) {
  return p < run.promptLen ? run.promptChars[p] : (run.steps[p - run.promptLen] || {t: ""}).t;
}

function drawProbs() {
  candsEl.textContent = "";
  if (!run || shown < 1) {
    probsTitle.textContent = "The choice at each step appears here: the candidates after temperature, top-k and top-p.";
    return;
  }
  const s = run.steps[shown - 1], chosen = s.t;
  probsTitle.textContent = s.forced
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
    b.innerHTML = `<span class="ch"></span><span class="bar"><i style="width:${(100 * p).toFixed(1)}%"></i></span><span class="pct">${pct(p)}</span>`;
    b.querySelector(".ch").textContent = show(c) + (c === chosen ? " ◀" : "");
    b.addEventListener("click", () => branch(shown, c));
    candsEl.appendChild(b);
  }
}

function branch(step, char) {  // the server continues text-before-step + char (gpt40k/app/page.py)
  if (!run || !run.done) return;
  const before = run.prompt + run.steps.slice(0, step - 1).map((s) => s.t).join("");
  trigger("branch", {text: before, char, keep: step - 1, run: run.id});
}

// ---- text <-> attention ------------------------------------------------------------------------
function highlight(p) {
  for (const s of textEl.querySelectorAll(".att, .hov")) {
    s.classList.remove("att", "hov");
    paintBase(s, s.className.split(" ")[0], stepProb(+s.dataset.pos));
  }
  hoverPos = p;
  const row = p === null ? null : run.rows.get(p);
  if (p === null || !row) {
    hoverInfo.textContent = p === null ? "" : "This character has not been read yet: its attention comes with the next step.";
    dirty = true; return;
  }
  let best = -1, bestPos = -1;
  for (let k = row.fk; k <= p; k++) {
    const q = weight(row, sel.layer, sel.head, k), s = run.spans[k];
    if (q > best) { best = q; bestPos = k; }
    if (!s) continue;
    s.classList.add("att");
    s.style.background = q > 0 ? `rgba(${LUT[q * 3]},${LUT[q * 3 + 1]},${LUT[q * 3 + 2]},0.9)` : "";
  }
  if (run.spans[p]) run.spans[p].classList.add("hov");
  const who = sel.head >= 0 ? `layer ${sel.layer + 1}, head ${sel.head + 1}` : `layer ${sel.layer + 1} (mean of heads)`;
  hoverInfo.textContent = `Reading ‘${show(charAt(p))}’ (character ${p + 1}), ${who} looked most at ‘${show(charAt(bestPos))}’ ` +
    `(character ${bestPos + 1}, weight ${((best / 255) ** 2).toFixed(2)}). Highlighted: all it looked at.`;
  dirty = true;
}

function stepProb(pos) {
  const s = run && pos >= run.promptLen ? run.steps[pos - run.promptLen] : null;
  return s ? s.p : null;
}

textEl.addEventListener("mouseover", (e) => {
  const s = e.target.closest("span[data-pos]");
  if (run && s && pinned === null) highlight(+s.dataset.pos);
});
textEl.addEventListener("mouseleave", () => { if (run && pinned === null) highlight(null); });
textEl.addEventListener("click", (e) => {  // tap (phones): pin a character's highlighting; tap again to clear
  const s = e.target.closest("span[data-pos]");
  if (!run || !s) return;
  const p = +s.dataset.pos;
  pinned = pinned === p ? null : p;
  highlight(pinned);
});

big.addEventListener("mousemove", (e) => {
  if (!run || !bigLayout) return;
  const r = big.getBoundingClientRect(), {pos, cell, label} = bigLayout;
  const i = Math.floor((e.clientY - r.top - label) / cell), j = Math.floor((e.clientX - r.left - label) / cell);
  if (i < 0 || j < 0 || i >= pos.length || j > i) { tip.hidden = true; return; }
  const q = weight(run.rows.get(pos[i]), sel.layer, sel.head, pos[j]);
  tip.textContent = `reading ‘${show(charAt(pos[i]))}’ (#${pos[i] + 1}) → ‘${show(charAt(pos[j]))}’ (#${pos[j] + 1}): ` +
    (q < 0 ? "outside the context window" : ((q / 255) ** 2).toFixed(3));
  tip.hidden = false;
  tip.style.left = `${Math.min(e.clientX - r.left + 12, r.width - tip.offsetWidth)}px`;
  tip.style.top = `${e.clientY - r.top + 14}px`;
});
big.addEventListener("mouseleave", () => { tip.hidden = true; });

overview.addEventListener("click", (e) => {
  const c = e.target.closest("canvas");
  if (!c) return;
  sel = {layer: +c.dataset.layer, head: +c.dataset.head};
  if (hoverPos !== null) highlight(hoverPos);
  dirty = true;
});

scrub.addEventListener("input", () => { following = false; setShown(+scrub.value); });
playBtn.addEventListener("click", () => {
  if (!run || !run.done) return;
  if (following) { following = false; dirty = true; return; }
  if (shown >= run.steps.length) setShown(0);
  following = true; allowance = 1; dirty = true;
});
root.addEventListener("keydown", (e) => {
  if (!run || !run.done || e.target.tagName === "SELECT") return;
  if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
    following = false;
    setShown(shown + (e.key === "ArrowRight" ? 1 : -1) * (e.shiftKey ? 10 : 1));
    e.preventDefault();
  } else if (e.key === " ") { playBtn.click(); e.preventDefault(); }
});
surpriseBox.addEventListener("change", () => {
  if (run) run.spans.forEach((s, i) => paintBase(s, s.className.split(" ")[0], stepProb(i)));
});
window.addEventListener("resize", () => { dirty = true; });
// Stop (a Gradio button elsewhere on the page, maybe rendered after this view): freeze at once.
document.addEventListener("click", (e) => { if (e.target.closest(`#${root.dataset.stop}`)) stopNow(); }, true);

// the scale under the big map
(() => {
  const c = $(".g4k-scalecanvas"), ctx = c.getContext("2d");
  for (let x = 0; x < c.width; x++) { ctx.fillStyle = rgb(Math.round(255 * Math.sqrt(x / (c.width - 1)))); ctx.fillRect(x, 0, 1, c.height); }
})();

watch("value", onValue);
onValue();
requestAnimationFrame(frame);
