// A run as data (static/live/run.js): steps in order, a lost step stops the run, branches keep
// what came before the fork.
import {test} from "node:test";
import assert from "node:assert/strict";
import {addStep, branchText, charAt, endRun, lastRead, newRun, stepProb, stopRun, windowPositions}
  from "../../gpt40k/app/static/live/run.js";

const header = (over = {}) => ({kind: "start", run: "r1", layers: 1, heads: 1, prompt: "ab", branch: false, keep: 0,
                                notes: [], ...over});
const row = (position) => [position, 0, Buffer.from(new Array(position + 1).fill(255)).toString("base64")];
const step = (i, t, rows = []) => ({i, t, p: 0.5, c: [[t, 0.5], ["x", 0.2]], r: rows});

test("steps are added once and in order; a gap stops the run with a note", () => {
  const run = newRun(header());
  assert.equal(run.promptLen, 2);
  assert.equal(addStep(run, step(1, "c", [row(1)])), "added");
  assert.equal(addStep(run, step(1, "c")), "had");
  assert.equal(run.steps.length, 1);
  assert.equal(charAt(run, 2), "c");
  assert.equal(stepProb(run, 2), 0.5);
  assert.equal(stepProb(run, 0), null);
  assert.equal(addStep(run, step(3, "e")), "lost");
  assert.ok(run.stopped && run.done && /Steps 2-2 were lost/.test(run.notes.at(-1)));
  assert.equal(addStep(run, step(2, "d")), "ignored");
});

test("the prompt counts code points, as the server does", () => {
  assert.equal(newRun(header({prompt: "a🙂"})).promptLen, 2);
});

test("a branch keeps the steps before the fork, then the forced character", () => {
  const first = newRun(header());
  ["c", "d", "e"].forEach((t, k) => addStep(first, step(k + 1, t, [row(k + 1)])));
  endRun(first, {kind: "end", run: "r1", notes: []});
  assert.equal(branchText(first, 3), "abcd");  // forking at step 3: the text before it
  const branch = newRun(header({run: "r2", branch: true, keep: 2, prompt: "abcdX"}), first);
  assert.deepEqual(branch.steps.map((s) => s.t), ["c", "d", "X"]);
  assert.ok(branch.steps[2].forced && branch.steps[2].p === null);
  assert.deepEqual(branch.steps[2].c, first.steps[2].c);  // the choice the fork was made from
  assert.equal(branch.prompt, "ab");
  assert.deepEqual([...branch.rows.keys()], [1, 2, 3]);  // rows of positions before the fork only
  assert.equal(addStep(branch, step(1, "y")), "added");  // the server counts the branch's steps from 1
  assert.equal(charAt(branch, 5), "y");
});

test("only this run's end ends it; stop keeps what is shown", () => {
  const run = newRun(header());
  ["c", "d", "e"].forEach((t, k) => addStep(run, step(k + 1, t)));
  assert.equal(endRun(run, {kind: "end", run: "other"}), false);
  stopRun(run, 2);
  assert.equal(run.steps.length, 2);
  assert.equal(run.notes.at(-1), "Stopped after 2 characters.");
  assert.equal(endRun(run, {kind: "end", run: "r1"}), false);  // stopped: the server's end comes too late
});

test("the maps show the newest read characters, or those around the hovered one", () => {
  const run = newRun(header({prompt: "a"}));
  for (let k = 1; k <= 40; k++) addStep(run, step(k, "z", [row(k - 1)]));
  assert.equal(lastRead(run, 40), 39);
  assert.equal(lastRead(run, 0), 0);  // before the first step: the prompt's last character, read for it
  assert.deepEqual(windowPositions(run, 40, null, 4), [36, 37, 38, 39]);
  assert.deepEqual(windowPositions(run, 40, 10, 4), [9, 10, 11, 12]);  // the hovered one in the middle
  assert.deepEqual(windowPositions(run, 3, null, 4), [0, 1, 2]);
});

test("where two texts part, and which step the lens explains", async () => {
  const {firstDifference, explainedStep} = await import("../../gpt40k/app/static/live/run.js");
  assert.equal(firstDifference("the sea", "the sky"), 5);
  assert.equal(firstDifference("the", "the sea"), -1);  // one is the other's start
  assert.equal(firstDifference("a🙂b", "a🙂c"), 2);  // code points, as the steps count
  const run = newRun(header());  // prompt "ab"
  ["c", "d", "e"].forEach((t, k) => addStep(run, step(k + 1, t)));
  assert.equal(explainedStep(run, 3, null), 3);  // the newest shown step
  assert.equal(explainedStep(run, 3, 3), 2);  // hovering the character step 2 wrote
  assert.equal(explainedStep(run, 1, 4), 1);  // a character not shown yet: the shown step
  assert.equal(explainedStep(run, 3, 0), 3);  // the prompt: the shown step
  assert.equal(explainedStep(run, 0, null), null);
});

test("a step keeps its lens and pushes; the end its loss", () => {
  const run = newRun(header());
  addStep(run, {...step(1, "c"), l: [[["c", 0.5]]], a: [[0.1, -0.2]]});
  assert.deepEqual(run.steps[0].l, [[["c", 0.5]]]);
  assert.deepEqual(run.steps[0].a, [[0.1, -0.2]]);
  endRun(run, {kind: "end", run: "r1", notes: [], loss: [1.39, 1.61, 1000]});
  assert.deepEqual(run.loss, [1.39, 1.61, 1000]);
  assert.equal(newRun(header({knockout: "L2H3", roles: [["prev char", 0.9]]})).knockout, "L2H3");
});
