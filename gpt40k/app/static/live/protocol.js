// The step stream as the page reads it. gpt40k/app/stepstream.py (StepStream) writes it; this is
// the one place it is read, and tests/test_protocol.py checks that both sides agree.

export const QUANT_LEVELS = 255;  // a weight w travels as the byte q = round(255 * sqrt(w))
export const START_KEYS = ["kind", "run", "layers", "heads", "prompt", "branch", "keep", "notes", "roles", "knockout",
                           "settings"];
export const STEP_KEYS = ["i", "t", "p", "c", "r", "l", "a"];  // l: the logit lens; a: the heads' direct pushes
export const END_KEYS = ["kind", "run", "steps", "notes", "stopped", "loss", "own"];
// A run kept as a file (trace.js) or drawn before the first run: everything the page needs to show it.
export const TRACE_KEYS = ["format", "version", "run", "layers", "heads", "prompt", "settings", "notes", "roles",
                           "knockout", "loss", "own", "lineage", "steps", "rows"];
export const TRACE_FORMAT = "gpt40k-trace";

export const weightOf = (q) => (q / QUANT_LEVELS) ** 2;

export function bytesB64(bytes) {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(bin);
}

export function b64bytes(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// An attention row [position, first key, base64 bytes]: (layers, heads, keys) bytes, keys fk..position.
export function decodeRow([position, firstKey, data]) {
  return {position, fk: firstKey, n: position - firstKey + 1, q: b64bytes(data)};
}

// What one update of the component's value says: the steps of a run (with its start message when the
// run is new to the page), or the run's end, or an error, or a whole run (a trace); null for nothing.
export function readUpdate(value, lastStart) {
  if (!value) return null;
  if (!Array.isArray(value)) {
    if (value.format === TRACE_FORMAT) return {kind: "trace", trace: value};
    return value.kind === "end" || value.kind === "error" ? value : null;
  }
  if (!value.length) return null;
  const fresh = value[0] !== lastStart;
  return {kind: "steps", startRaw: value[0], start: fresh ? JSON.parse(value[0]) : null,
          steps: value.slice(1).map((m) => JSON.parse(m))};
}

// The byte of one weight (sqrt scale); head -1: the layer's mean over heads; -1: outside the window.
export function weight(row, heads, layer, head, key) {
  if (!row || key < row.fk || key >= row.fk + row.n) return -1;
  if (head >= 0) return row.q[(layer * heads + head) * row.n + key - row.fk];
  let sum = 0;
  for (let h = 0; h < heads; h++) { const q = row.q[(layer * heads + h) * row.n + key - row.fk]; sum += q * q; }
  return Math.round(Math.sqrt(sum / heads));
}
