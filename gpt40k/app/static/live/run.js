// A run on the page as data: its prompt, steps and attention rows, and what they mean. No DOM.
import {decodeRow} from "./protocol.js";

// A run from its start message; a branch keeps the first `keep` steps of `previous`, then the forced one.
export function newRun(h, previous) {
  const kept = h.branch && previous ? previous : null;
  const prompt = kept ? previous.prompt : h.prompt;
  const promptChars = Array.from(prompt);  // code points, as the server counts positions
  const run = {id: h.run, layers: h.layers, heads: h.heads, prompt, promptChars, promptLen: promptChars.length,
               steps: [], rows: new Map(), base: 0, done: false, stopped: false, notes: h.notes || [],
               roles: h.roles || null, knockout: h.knockout || "", loss: null, own: null,
               // a branch's link is its original's (share.js): the same settings write the original again
               settings: kept ? previous.settings : h.settings || null,
               lineage: {knock: h.knockout || "", forces: []}};
  if (kept) {
    run.steps = previous.steps.slice(0, h.keep);
    for (const [p, row] of previous.rows) if (p < run.promptLen + h.keep) run.rows.set(p, row);
    const forced = Array.from(h.prompt).pop(), original = previous.steps[h.keep];
    run.steps.push({t: forced, p: null, c: original ? original.c : [], forced: true});
    run.base = h.keep + 1;
    // how this text came about, for a link that writes it again (share.js): the heads knocked out
    // before, then each forced character in turn
    run.lineage = {knock: previous.lineage.knock, forces: previous.lineage.forces.concat([[h.keep + 1, forced]])};
  }
  return run;
}

// Add a step message: "added", "had" (sent again), "lost" (one went missing: the run stops, with a
// note, rather than show a wrong text) or "ignored" (the run was stopped).
export function addStep(run, m) {
  if (run.stopped) return "ignored";
  const k = run.base + m.i;  // 1-based step number on the page
  if (k <= run.steps.length) return "had";
  if (k > run.steps.length + 1) {
    run.stopped = run.done = true;
    run.notes = run.notes.concat([`Steps ${run.steps.length + 1}-${k - 1} were lost on the way; press Generate again.`]);
    return "lost";
  }
  run.steps[k - 1] = {t: m.t, p: m.p, c: m.c, l: m.l || null, a: m.a || null};
  for (const r of m.r) run.rows.set(r[0], decodeRow(r));
  return "added";
}

// The server's end message for this run: true if it ended the run.
export function endRun(run, end) {
  if (end.run !== run.id || run.stopped) return false;
  run.done = true;
  run.notes = end.notes || run.notes;
  run.loss = end.loss || null;
  run.own = end.own || null;
  return true;
}

// Stop: keep the `shown` steps, drop the rest; later messages of this run are ignored.
export function stopRun(run, shown) {
  run.stopped = run.done = true;
  run.steps.length = Math.min(run.steps.length, shown);
  run.notes = run.notes.concat([`Stopped after ${shown} characters.`]);
}

export const charAt = (run, p) =>
  p < run.promptLen ? run.promptChars[p] : (run.steps[p - run.promptLen] || {t: ""}).t;

export function stepProb(run, pos) {
  const s = pos >= run.promptLen ? run.steps[pos - run.promptLen] : null;
  return s ? s.p : null;
}

// The newest character whose attention row is shown when `shown` steps are.
export function lastRead(run, shown) {
  let p = run.promptLen + Math.max(shown, 1) - 2;
  while (p >= 0 && !run.rows.has(p)) p--;
  return p;
}

// The n positions a map shows: the newest read ones, or around the hovered character.
export function windowPositions(run, shown, hoverPos, n) {
  const newest = lastRead(run, shown);
  const end = hoverPos !== null && run.rows.has(hoverPos) ? Math.max(hoverPos, newest) : newest;
  const last = hoverPos !== null && hoverPos < end - n + 1 ? hoverPos + Math.floor(n / 2) : end;
  const out = [];
  for (let p = Math.max(0, Math.min(last, end) - n + 1); p <= Math.min(last, end); p++) out.push(p);
  return out;
}

// The text a branch at `step` continues: the prompt and the steps before it.
export const branchText = (run, step) => run.prompt + run.steps.slice(0, step - 1).map((s) => s.t).join("");

// The written text of a run (its steps' characters).
export const written = (run) => run.steps.map((s) => s.t).join("");

// The first step (0-based) where two runs wrote different characters; -1 if one is the other's start.
export function firstDifference(a, b) {
  const x = Array.from(a), y = Array.from(b), n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return i;
  return -1;
}

// The step whose lens and attribution are shown: the one that wrote the hovered character, else the
// newest one shown; null before any.
export function explainedStep(run, shown, hoverPos) {
  const k = hoverPos !== null && hoverPos >= run.promptLen ? hoverPos - run.promptLen + 1 : shown;
  return k >= 1 && k <= shown ? k : shown >= 1 ? shown : null;
}
