// The page's reading of the step stream (static/live/protocol.js); tests/test_protocol.py checks
// it against what the server writes.
import {test} from "node:test";
import assert from "node:assert/strict";
import {decodeRow, readUpdate, weight, weightOf} from "../../gpt40k/app/static/live/protocol.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");

test("a row decodes to its keys' bytes, layer by layer and head by head", () => {
  // 2 layers x 2 heads x keys 3..5 (position 5, first key 3)
  const bytes = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const row = decodeRow([5, 3, b64(bytes)]);
  assert.equal(row.position, 5);
  assert.equal(row.fk, 3);
  assert.equal(row.n, 3);
  assert.deepEqual(Array.from(row.q), bytes);
  assert.equal(weight(row, 2, 1, 0, 4), 8);  // layer 2, head 1, key 4
  assert.equal(weight(row, 2, 0, 1, 5), 6);
  assert.equal(weight(row, 2, 0, 0, 2), -1);  // before the window
  assert.equal(weight(row, 2, 0, 0, 6), -1);  // after the position
  // head -1: the layer's mean weight, on the square-root scale: sqrt((1^2 + 4^2) / 2)
  assert.equal(weight(row, 2, 0, -1, 3), Math.round(Math.sqrt((1 + 16) / 2)));
  assert.equal(weight(null, 2, 0, 0, 3), -1);
});

test("bytes are weights on a square-root scale", () => {
  assert.equal(weightOf(0), 0);
  assert.equal(weightOf(255), 1);
  assert.ok(Math.abs(weightOf(128) - 0.252) < 0.001);
});

test("an update is a run's steps, its end, an error or nothing", () => {
  const start = JSON.stringify({kind: "start", run: "r1"}), step = JSON.stringify({i: 1, t: "a"});
  const fresh = readUpdate([start, step], null);
  assert.equal(fresh.kind, "steps");
  assert.deepEqual(fresh.start, {kind: "start", run: "r1"});
  assert.deepEqual(fresh.steps, [{i: 1, t: "a"}]);
  assert.equal(readUpdate([start, step], start).start, null);  // the same run: only its new steps
  assert.deepEqual(readUpdate({kind: "end", run: "r1"}, start), {kind: "end", run: "r1"});
  assert.equal(readUpdate({kind: "error", message: "m"}, start).message, "m");
  for (const nothing of [null, undefined, [], {kind: "other"}]) assert.equal(readUpdate(nothing, start), null);
});
