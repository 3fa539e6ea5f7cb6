// What the arrow keys do in the head grid and in the text: pure functions of positions.

const clamp = (x, lo, hi) => Math.max(lo, Math.min(hi, x));

// The head after `key` in a grid of `layers` rows and `heads` + 1 columns (the last one: the layer's
// mean, head -1); null for a key that does not move in the grid.
export function moveHead(sel, key, layers, heads) {
  const col = sel.head < 0 ? heads : sel.head;
  const moves = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0],
                 Home: [0, -col], End: [0, heads - col]};
  const m = moves[key];
  if (!m) return null;
  const c = clamp(col + m[1], 0, heads);
  return {layer: clamp(sel.layer + m[0], 0, layers - 1), head: c === heads ? -1 : c};
}

// The character after `key` among positions 0..last, from `pos` (null: none chosen yet, so the
// first press lands on the newest character); undefined for a key that does not move in the text.
export function moveChar(pos, key, last, shift = false) {
  if (last < 0) return undefined;
  const step = shift ? 10 : 1;
  if (key === "Home") return 0;
  if (key === "End") return last;
  if (key === "ArrowLeft") return pos === null ? last : clamp(pos - step, 0, last);
  if (key === "ArrowRight") return pos === null ? last : clamp(pos + step, 0, last);
  return undefined;
}
