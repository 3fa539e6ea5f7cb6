// Colours and labels of the live view: pure functions of numbers and characters, no DOM.

// Colour of an attention weight, indexed by its byte q = 255 * sqrt(w): white to dark red.
export const STOPS = [[255, 255, 255], [254, 224, 200], [252, 146, 114], [222, 45, 38], [120, 0, 10]];
export const LUT = colourTable(STOPS);

function colourTable(stops) {  // 256 RGB triples, linear between the stops
  const lut = new Uint8ClampedArray(256 * 3);
  for (let q = 0; q < 256; q++) {
    const x = (q / 255) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    for (let c = 0; c < 3; c++) lut[q * 3 + c] = stops[i][c] + f * (stops[i + 1][c] - stops[i][c]);
  }
  return lut;
}

export const rgb = (q) => `rgb(${LUT[q * 3]},${LUT[q * 3 + 1]},${LUT[q * 3 + 2]})`;

const SHOW = {"\n": "⏎", " ": "␣", "\t": "⇥"};
export const show = (c) => SHOW[c] || c;  // characters that would be invisible on their own

export const pct = (p) =>
  (p < 0.001 ? "<0.1" : p >= 0.995 ? "100" : p >= 0.1 ? (100 * p).toFixed(0) : (100 * p).toFixed(1)) + "%";

// Surprise: -log2 p bits, as the opacity of an amber shade (0: not shaded). At its darkest the shade
// still leaves the model's dark-red text at 4.5:1 or more (tests/test_browser.py measures it).
export const SURPRISE_RGB = [245, 158, 11];
export const SURPRISE_MAX = 0.55;
export function surpriseAlpha(p) {
  if (p === null || p === undefined) return 0;
  const a = Math.min(SURPRISE_MAX, Math.max(0, -Math.log2(Math.max(p, 1e-6)) / 10));
  return a > 0.03 ? a : 0;
}

// Attention on the text: a line under each character looked at, thicker and darker the more it was
// looked at (q: the weight's byte). Under the text, not behind it, so every character, its surprise
// shade and a space stay readable at every weight; null below 1% (w < 0.01).
export function underline(q) {
  if (q < 26) return null;
  return {px: 1 + Math.round((4 * q) / 255), colour: rgb(Math.max(q, 150))};
}
