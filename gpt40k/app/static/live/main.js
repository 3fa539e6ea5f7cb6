// The live view: mounted by gr.HTML's js_on_load (element, props, trigger, watch). The server
// streams one small message per step (protocol.js); everything drawn here, including scrubbing and
// switching heads, needs no round trip to the server.
import {readUpdate} from "./protocol.js";
import {advance, frameSeconds} from "./reveal.js";
import {addStep, branchText, endRun, newRun, stopRun} from "./run.js";
import {addSpan, cellTip, drawScale, drawText, findElements, headName, highlight, render, renderNotes,
        repaintSurprise, setHidden} from "./view.js";

export function mount(element, props, trigger, watch) {
  const dom = findElements(element.querySelector(".g4k"));
  dom.pace.value = dom.root.dataset.pace || "35";
  const ui = {
    run: null, startRaw: null,  // the run on the page, and its start message as it came
    shown: 0,                   // steps revealed
    following: false,           // revealing steps as they arrive, at the chosen pace
    allowance: 0, lastTick: 0,  // the reveal loop's pace (reveal.js)
    sel: {layer: 0, head: 0},   // the head the big map shows; head -1: the layer's mean
    hoverPos: null, pinned: null, dirty: true, bigLayout: null,
    knock: new Set(),           // heads chosen to knock out, as "L2H3"
    original: null,             // a knock-out run's run before it, shown beside it
  };

  function startRun(header) {
    if (header.knockout && ui.run) ui.original = ui.run.knockout && ui.original ? ui.original : ui.run;
    else if (!header.branch) ui.original = null;
    ui.run = newRun(header, ui.run);
    drawText(dom, ui);
    ui.shown = header.branch ? ui.run.steps.length : 0;
    ui.following = true; ui.allowance = 1; ui.pinned = null; ui.hoverPos = null;
    setHidden(ui, ui.shown);
    renderNotes(dom, ui);
    const box = dom.text.getBoundingClientRect();  // a new run: bring the text into view (phones: below the settings)
    if (box.top < 0 || box.bottom > window.innerHeight) dom.text.scrollIntoView({block: "center"});
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
    } else if (update.kind === "error") {
      if (ui.run && !ui.run.done) { ui.run.done = true; ui.following = false; }
      if (ui.run) { ui.run.notes = ui.run.notes.concat([update.message]); renderNotes(dom, ui); }
      else dom.notes.textContent = update.message;
    } else if (ui.run && endRun(ui.run, update)) renderNotes(dom, ui);
    ui.dirty = true;
  }

  function stopNow() {  // Stop: freeze at what is shown; later messages of this run are ignored
    const run = ui.run;
    if (!run || (run.done && !ui.following) || run.stopped) return;
    ui.following = false;
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

  // ---- events ----------------------------------------------------------------------------------
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
    if (!c) return;
    ui.sel = {layer: +c.dataset.layer, head: +c.dataset.head};
    if (ui.hoverPos !== null) highlight(dom, ui, ui.hoverPos);
    ui.dirty = true;
  });
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
  dom.scrub.addEventListener("input", () => { ui.following = false; setShown(+dom.scrub.value); });
  dom.play.addEventListener("click", () => {
    const run = ui.run;
    if (!run || !run.done) return;
    if (ui.following) { ui.following = false; ui.dirty = true; return; }
    if (ui.shown >= run.steps.length) setShown(0);
    ui.following = true; ui.allowance = 1; ui.dirty = true;
  });
  dom.root.addEventListener("keydown", (e) => {
    if (!ui.run || !ui.run.done || e.target.tagName === "SELECT") return;
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      ui.following = false;
      setShown(ui.shown + (e.key === "ArrowRight" ? 1 : -1) * (e.shiftKey ? 10 : 1));
      e.preventDefault();
    } else if (e.key === " ") { dom.play.click(); e.preventDefault(); }
  });
  dom.surprise.addEventListener("change", () => repaintSurprise(dom, ui));
  window.addEventListener("resize", () => { ui.dirty = true; });
  // Stop (a Gradio button elsewhere on the page, maybe rendered after this view): freeze at once.
  document.addEventListener("click", (e) => { if (e.target.closest(`#${dom.root.dataset.stop}`)) stopNow(); }, true);

  drawScale(dom);
  watch("value", onValue);
  onValue();
  requestAnimationFrame(frame);
}
