// The live view: mounted by gr.HTML's js_on_load (element, props, trigger, watch). The server
// streams one small message per step (protocol.js); everything drawn here, including scrubbing and
// switching heads, needs no round trip to the server.
import {moveChar, moveHead} from "./keys.js";
import {readFile, savePicture, saveTrace} from "./keep.js";
import {readUpdate} from "./protocol.js";
import {advance, frameSeconds} from "./reveal.js";
import {addStep, branchText, endRun, newRun, stopRun} from "./run.js";
import {SPACE_PAGE, followUps, linkBase, linkQuery} from "./share.js";
import {isTraceError, runFromTrace} from "./trace.js";
import {addSpan, cellTip, drawScale, drawText, findElements, headName, highlight, render, renderNotes,
        repaintSurprise, setHidden} from "./view.js";

const NARROW = 820;  // px: the phone layout (live.css)

export function mount(element, props, trigger, watch) {
  const dom = findElements(element.querySelector(".g4k"));
  dom.pace.value = dom.root.dataset.pace || "35";
  const linked = dom.root.dataset.link === "on";  // this view's runs are the page's address (the Write tab)
  const ui = {
    run: null, startRaw: null,  // the run on the page, and its start message as it came
    history: [],                // the runs a branch or a knock-out came from, newest last (Undo)
    shown: 0,                   // steps revealed
    following: false,           // revealing steps as they arrive, at the chosen pace
    allowance: 0, lastTick: 0,  // the reveal loop's pace (reveal.js)
    sel: {layer: 0, head: 0},   // the head the big map shows; head -1: the layer's mean
    hoverPos: null, pinned: null, dirty: true, bigLayout: null,
    knock: new Set(),           // heads chosen to knock out, as "L2H3"
    link: linked ? followUps(location.search) : {ops: [], notes: []},  // what a link asks after its run
  };

  function showRun(run, shown, following) {
    ui.run = run;
    drawText(dom, ui);
    ui.shown = shown;
    ui.following = following; ui.allowance = 1; ui.pinned = null; ui.hoverPos = null;
    setHidden(ui, ui.shown);
    renderNotes(dom, ui);
    ui.dirty = true;
  }

  function startRun(header) {
    if ((header.branch || header.knockout) && ui.run) ui.history = ui.history.concat([ui.run]).slice(-20);
    else ui.history = [];
    const run = newRun(header, ui.run);
    showRun(run, header.branch ? run.steps.length : 0, true);
    if (dom.root.dataset.mode === "compare") return;
    // a new run: bring it into view (phones: the text, the map and the choice, below the settings)
    if (window.innerWidth <= NARROW) { dom.root.scrollIntoView({block: "start"}); return; }
    const box = dom.text.getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) dom.text.scrollIntoView({block: "center"});
  }

  // A whole run at once: the server's example before the first run, or a file loaded back (replayed).
  function showTrace(data, replay) {
    try {
      const run = runFromTrace(data);
      ui.history = []; ui.startRaw = null;
      showRun(run, replay ? 0 : run.steps.length, replay);
      return true;
    } catch (e) {
      dom.keepInfo.textContent = isTraceError(e) ? e.message : `The run could not be shown: ${e.message}`;
      return false;
    }
  }

  function receive(m) {
    const run = ui.run, status = addStep(run, m);
    if (status === "lost") renderNotes(dom, ui);
    if (status !== "added") return;
    const pos = run.promptLen + run.base + m.i - 1;
    if (run.spans.length <= pos) addSpan(dom, ui, m.t, "g", m.p, pos);
    run.spans[pos].classList.add("hidden");
  }

  function onValue() {
    const update = readUpdate(props.value, ui.startRaw);
    if (!update) return;
    if (update.kind === "steps") {
      if (update.start) { ui.startRaw = update.startRaw; startRun(update.start); }
      update.steps.forEach(receive);
    } else if (update.kind === "trace") {  // the server's example: for an empty view, never over a run
      if (!ui.run) showTrace(update.trace, false);  // (on a slow link it can come after Generate)
    } else if (update.kind === "error") {
      if (ui.run && !ui.run.done) { ui.run.done = true; ui.following = false; }
      if (ui.run) { ui.run.notes = ui.run.notes.concat([update.message]); renderNotes(dom, ui); }
      else dom.notes.textContent = update.message;
    } else if (ui.run && endRun(ui.run, update)) {
      renderNotes(dom, ui);
      if (linked) afterRun();
    }
    ui.dirty = true;
  }

  // The page's address holds the run on it (share.js), so a reload or a copied link writes it again;
  // on a Space, the Space's page is told too (the Hub's documented message), as it holds the address.
  const embedded = window.parent !== window;
  function writeAddress(run) {
    if (!run.settings) return;
    const query = linkQuery(run, location.search);
    history.replaceState(history.state, "", `${location.pathname}?${query}`);
    if (embedded) window.parent.postMessage({queryString: `?${query}`}, SPACE_PAGE);
  }

  function afterRun() {  // a run ended: do what the link asks next, if anything, else note its address
    const run = ui.run;
    if (run.stopped) return;
    if (ui.link.notes.length) {
      run.notes = run.notes.concat(ui.link.notes); ui.link.notes = [];
      renderNotes(dom, ui);
    }
    const op = ui.link.ops.shift();
    if (!op) { writeAddress(run); return; }
    if (op.kind === "knockout") {
      ui.knock = new Set(op.heads.split(",").map((h) => h.trim().toUpperCase()).filter(Boolean));
      trigger("knockout", {heads: op.heads, keep_only: false, run: run.id});
    } else if (op.step > run.steps.length) {
      ui.link.notes.push(`The link forces step ${op.step}, past this text's ${run.steps.length} steps: left out.`);
      afterRun();
    } else {
      trigger("branch", {text: branchText(run, op.step), char: op.char, keep: op.step - 1, run: run.id});
    }
  }

  function stopNow() {  // Stop: freeze at what is shown; later messages of this run are ignored
    const run = ui.run;
    if (!run || (run.done && !ui.following) || run.stopped) return;
    ui.following = false;
    ui.link.ops = [];
    stopRun(run, ui.shown);
    run.spans.splice(run.promptLen + ui.shown).forEach((s) => s.remove());
    renderNotes(dom, ui);
    ui.dirty = true;
  }

  function setShown(s) {
    const run = ui.run;
    s = Math.max(0, Math.min(s, run ? run.steps.length : 0));
    if (s === ui.shown) return;
    const start = run.promptLen;
    if (s > ui.shown) for (let i = start + ui.shown; i < start + s; i++) run.spans[i].classList.remove("hidden");
    else for (let i = start + s; i < start + ui.shown; i++) run.spans[i].classList.add("hidden");
    ui.shown = s;
    ui.dirty = true;
  }

  function setSel(sel) {  // the head the big map shows
    ui.sel = sel;
    if (ui.hoverPos !== null) highlight(dom, ui, ui.hoverPos);
    ui.dirty = true;
  }

  function frame(now) {  // the reveal loop: one frame at a time, at the chosen pace
    const dt = frameSeconds(now, ui.lastTick), run = ui.run;
    ui.lastTick = now;
    if (run && ui.following) {
      const next = advance(ui.allowance, dt, Number(dom.pace.value), run.steps.length, ui.shown);
      ui.allowance = next.allowance;
      setShown(next.shown);
      if (ui.shown >= run.steps.length && run.done) { ui.following = false; ui.dirty = true; }
      if (ui.dirty) dom.text.scrollTop = dom.text.scrollHeight;
    }
    if (ui.dirty) { ui.dirty = false; render(dom, ui); }
    if (element.isConnected) requestAnimationFrame(frame);
  }

  // ---- the text: hover, tap, or the arrow keys --------------------------------------------------
  dom.text.addEventListener("mouseover", (e) => {
    const s = e.target.closest("span[data-pos]");
    if (ui.run && s && ui.pinned === null) highlight(dom, ui, +s.dataset.pos);
  });
  dom.text.addEventListener("mouseleave", () => { if (ui.run && ui.pinned === null) highlight(dom, ui, null); });
  dom.text.addEventListener("click", (e) => {  // tap (phones): pin a character's highlighting; tap again to clear
    const s = e.target.closest("span[data-pos]");
    if (!ui.run || !s) return;
    ui.pinned = ui.pinned === +s.dataset.pos ? null : +s.dataset.pos;
    highlight(dom, ui, ui.pinned);
  });
  dom.text.addEventListener("keydown", (e) => {  // the arrow keys do what hovering does, one character at a time
    const run = ui.run;
    if (!run) return;
    if (e.key === "Escape") { ui.pinned = null; highlight(dom, ui, null); return; }
    const pos = moveChar(ui.pinned, e.key, run.promptLen + ui.shown - 1, e.shiftKey);
    if (pos === undefined) return;
    e.preventDefault(); e.stopPropagation();
    ui.pinned = pos;
    highlight(dom, ui, pos);
    run.spans[pos].scrollIntoView({block: "nearest"});
  });

  // ---- the maps and the grid --------------------------------------------------------------------
  dom.big.addEventListener("mousemove", (e) => {
    if (!ui.run || !ui.bigLayout) return;
    const r = dom.big.getBoundingClientRect(), text = cellTip(ui, e.clientX - r.left, e.clientY - r.top);
    dom.tip.hidden = text === null;
    if (text === null) return;
    dom.tip.textContent = text;
    dom.tip.style.left = `${Math.min(e.clientX - r.left + 12, r.width - dom.tip.offsetWidth)}px`;
    dom.tip.style.top = `${e.clientY - r.top + 14}px`;
  });
  dom.big.addEventListener("mouseleave", () => { dom.tip.hidden = true; });
  dom.overview.addEventListener("click", (e) => {
    const c = e.target.closest("[data-layer]");
    if (c) setSel({layer: +c.dataset.layer, head: +c.dataset.head});
  });
  dom.overview.addEventListener("keydown", (e) => {  // a radio group: the arrow keys choose, one tab stop
    const run = ui.run, next = run && moveHead(ui.sel, e.key, run.layers, run.heads);
    if (!next) return;
    e.preventDefault(); e.stopPropagation();
    setSel(next);
    render(dom, ui);
    dom.overview.querySelector(`canvas[data-layer="${next.layer}"][data-head="${next.head}"]`).focus();
  });
  dom.headSel.addEventListener("change", () => {
    const [layer, head] = dom.headSel.value.split(":").map(Number);
    setSel({layer, head});
  });
  dom.toGrid.addEventListener("click", () => {
    dom.overview.scrollIntoView({block: "center"});
    const chosen = dom.overview.querySelector("canvas[tabindex='0']");
    if (chosen) chosen.focus({preventScroll: true});
  });

  // ---- changing the run: force a candidate, knock heads out, undo ---------------------------------
  dom.cands.addEventListener("click", (e) => {  // force a candidate: the server continues from it (page.py)
    const b = e.target.closest("button.g4k-cand");
    const run = ui.run;
    if (!b || b.disabled || !run || !run.done) return;
    trigger("branch", {text: branchText(run, ui.shown), char: b.dataset.char, keep: ui.shown - 1, run: run.id});
  });
  dom.knockAdd.addEventListener("click", () => {
    if (ui.sel.head < 0) return;
    const name = headName(ui.sel.layer, ui.sel.head);
    if (!ui.knock.delete(name)) ui.knock.add(name);
    ui.dirty = true;
  });
  dom.knockClear.addEventListener("click", () => { ui.knock.clear(); ui.dirty = true; });
  const knockOut = (keepOnly) => {
    if (!ui.run || !ui.run.done || !ui.knock.size) return;
    trigger("knockout", {heads: [...ui.knock].join(","), keep_only: keepOnly, run: ui.run.id});
  };
  dom.knockRun.addEventListener("click", () => knockOut(false));
  dom.knockKeep.addEventListener("click", () => knockOut(true));
  dom.undo.addEventListener("click", () => {
    if (!ui.history.length || (ui.run && !ui.run.done)) return;
    const before = ui.history.pop();
    ui.startRaw = null;
    showRun(before, before.steps.length, false);
    if (linked) writeAddress(before);
    dom.text.focus({preventScroll: true});
  });

  // ---- replaying ------------------------------------------------------------------------------------
  dom.scrub.addEventListener("input", () => { ui.following = false; setShown(+dom.scrub.value); });
  dom.play.addEventListener("click", () => {
    const run = ui.run;
    if (!run || !run.done) return;
    if (ui.following) { ui.following = false; ui.dirty = true; return; }
    if (ui.shown >= run.steps.length) setShown(0);
    ui.following = true; ui.allowance = 1; ui.dirty = true;
  });
  dom.root.addEventListener("keydown", (e) => {  // on the view itself: the arrow keys scrub, space replays
    if (!ui.run || !ui.run.done || (e.target !== dom.root && e.target !== dom.scrub)) return;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      ui.following = false;
      setShown(ui.shown + (e.key === "ArrowRight" ? 1 : -1) * (e.shiftKey ? 10 : 1));
      e.preventDefault();
    } else if (e.key === " ") { dom.play.click(); e.preventDefault(); }
  });
  dom.surprise.addEventListener("change", () => repaintSurprise(dom, ui));

  // ---- keeping and sharing --------------------------------------------------------------------------
  dom.copyLink.addEventListener("click", async () => {
    const url = `${linkBase(location, document.referrer, embedded)}?${linkQuery(ui.run, location.search)}`;
    let said = "Link copied:";
    try { await navigator.clipboard.writeText(url); } catch { said = "Copy this link:"; }
    const box = Object.assign(document.createElement("input"), {readOnly: true, value: url, className: "g4k-link"});
    box.setAttribute("aria-label", "The link to this run");
    dom.keepInfo.replaceChildren(said + " ", box);
    box.select();
  });
  dom.saveRun.addEventListener("click", () => { if (ui.run) saveTrace(ui.run); });
  dom.savePng.addEventListener("click", () => {
    const run = ui.run, {layer, head} = ui.sel, name = head >= 0 ? headName(layer, head) : `L${layer + 1}-mean`;
    const model = run.settings && run.settings.model ? `${run.settings.model} · ` : "";
    savePicture(dom, `GPT-40k · ${model}${dom.selLabel.textContent} · after step ${ui.shown}`,
                `gpt40k-${name}-step${ui.shown}.png`);
  });
  dom.loadRun.addEventListener("click", () => dom.loadFile.click());
  dom.loadFile.addEventListener("change", async () => {
    const file = dom.loadFile.files[0];
    dom.loadFile.value = "";
    if (!file) return;
    try {
      if (showTrace(await readFile(file), true)) dom.keepInfo.textContent = `Replaying ${file.name}.`;
    } catch (e) { dom.keepInfo.textContent = e.message; }
  });

  // Enter in the prompt writes (Gradio's submit) and brings the keyboard here, to the text.
  if (dom.root.dataset.prompt) {
    document.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && e.target.closest(`#${dom.root.dataset.prompt} textarea`)) {
        setTimeout(() => dom.text.focus({preventScroll: true}), 0);
      }
    });
  }
  window.addEventListener("resize", () => { ui.dirty = true; });
  // Stop (a Gradio button elsewhere on the page, maybe rendered after this view): freeze at once.
  document.addEventListener("click", (e) => { if (e.target.closest(`#${dom.root.dataset.stop}`)) stopNow(); }, true);

  drawScale(dom);
  watch("value", onValue);
  onValue();
  requestAnimationFrame(frame);
}
