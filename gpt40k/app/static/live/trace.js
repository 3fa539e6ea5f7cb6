// A run as a file: what "Save run" writes, what "Load run" reads back (nothing is asked of the
// server), and what the server sends to draw an example before the first run (stepstream.py's
// `trace` writes the same keys; tests/test_protocol.py checks that the two agree).
import {TRACE_FORMAT, TRACE_KEYS, bytesB64, decodeRow} from "./protocol.js";
import {newRun} from "./run.js";

export const TRACE_VERSION = 1;
const MAX_STEPS = 5000, MAX_SIDE = 64;

export function traceOf(run) {
  const values = {format: TRACE_FORMAT, version: TRACE_VERSION, run: run.id, layers: run.layers, heads: run.heads,
    prompt: run.prompt, settings: run.settings, notes: run.notes, roles: run.roles, knockout: run.knockout,
    loss: run.loss, own: run.own, lineage: run.lineage,
    steps: run.steps.map((s) => ({t: s.t, p: s.forced ? null : s.p, c: s.c, l: s.l || null, a: s.a || null})),
    rows: [...run.rows.values()].sort((a, b) => a.position - b.position)
      .map((r) => [r.position, r.fk, bytesB64(r.q)])};
  return Object.fromEntries(TRACE_KEYS.map((k) => [k, values[k] === undefined ? null : values[k]]));
}

class TraceError extends Error {}
const bad = (why) => { throw new TraceError(`This file is not a run the page can show: ${why}.`); };
const isChar = (t) => typeof t === "string" && Array.from(t).length === 1;
const isProb = (p) => typeof p === "number" && p >= 0 && p <= 1;
const isPairs = (x) => Array.isArray(x) && x.every((c) => Array.isArray(c) && isChar(c[0]) && isProb(c[1]));
const isSide = (n) => Number.isInteger(n) && n >= 1 && n <= MAX_SIDE;

function readStep(s, k, layers, heads) {
  if (!s || !isChar(s.t) || !(s.p === null || isProb(s.p)) || !isPairs(s.c)) bad(`step ${k + 1} is malformed`);
  const lens = Array.isArray(s.l) && s.l.every(isPairs) ? s.l : null;
  const pushes = Array.isArray(s.a) && s.a.length === layers &&
    s.a.every((r) => Array.isArray(r) && r.length === heads && r.every(Number.isFinite)) ? s.a : null;
  return {t: s.t, p: s.p, c: s.c, l: lens, a: pushes, forced: s.p === null};
}

function readRow(r, layers, heads, positions) {
  if (!Array.isArray(r) || r.length !== 3 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) ||
      typeof r[2] !== "string" || r[1] < 0 || r[1] > r[0] || r[0] >= positions) bad("an attention row is malformed");
  let row;
  try { row = decodeRow(r); } catch { bad(`the attention row of character ${r[0] + 1} is not base64`); }
  if (row.q.length !== layers * heads * row.n) bad(`the attention row of character ${r[0] + 1} has the wrong size`);
  return row;
}

// The run a trace holds, done and ready to replay; a TraceError that says what is wrong otherwise.
export function runFromTrace(data) {
  if (!data || typeof data !== "object" || data.format !== TRACE_FORMAT) {
    bad(`it has no "format": "${TRACE_FORMAT}" (the page's “Save run” writes such files)`);
  }
  if (data.version !== TRACE_VERSION) bad(`it is version ${data.version}, and this page reads version ${TRACE_VERSION}`);
  const {layers, heads} = data;
  if (!isSide(layers) || !isSide(heads)) bad(`its layers and heads must be whole numbers from 1 to ${MAX_SIDE}`);
  if (typeof data.prompt !== "string") bad("its prompt is not text");
  if (!Array.isArray(data.steps) || data.steps.length > MAX_STEPS) bad(`its steps must be a list of at most ${MAX_STEPS}`);
  if (!Array.isArray(data.rows)) bad("it has no attention rows");
  const roles = Array.isArray(data.roles) && data.roles.length === layers * heads &&
    data.roles.every((r) => Array.isArray(r) && typeof r[0] === "string" && Number.isFinite(r[1])) ? data.roles : null;
  const notes = Array.isArray(data.notes) ? data.notes.filter((n) => typeof n === "string") : [];
  const run = newRun({run: String(data.run || "loaded"), layers, heads, prompt: data.prompt, notes, roles,
                      knockout: typeof data.knockout === "string" ? data.knockout : "",
                      settings: data.settings && typeof data.settings === "object" ? data.settings : null});
  run.steps = data.steps.map((s, k) => readStep(s, k, layers, heads));
  const positions = run.promptLen + run.steps.length;
  for (const r of data.rows) { const row = readRow(r, layers, heads, positions); run.rows.set(row.position, row); }
  const lineage = data.lineage;
  if (lineage && typeof lineage.knock === "string" && Array.isArray(lineage.forces) &&
      lineage.forces.every((f) => Array.isArray(f) && Number.isInteger(f[0]) && isChar(f[1]))) run.lineage = lineage;
  run.loss = Array.isArray(data.loss) && data.loss.length === 3 && data.loss.every(Number.isFinite) ? data.loss : null;
  run.own = Array.isArray(data.own) && data.own.length === 2 && data.own.every(Number.isFinite) ? data.own : null;
  run.done = true;
  return run;
}

export const isTraceError = (e) => e instanceof TraceError;
