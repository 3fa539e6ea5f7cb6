// Keys, links and saved runs (static/live/keys.js, share.js, trace.js): pure functions, no DOM.
import {test} from "node:test";
import assert from "node:assert/strict";
import {moveChar, moveHead} from "../../gpt40k/app/static/live/keys.js";
import {followUps, linkBase, linkQuery} from "../../gpt40k/app/static/live/share.js";
import {runFromTrace, traceOf} from "../../gpt40k/app/static/live/trace.js";
import {addStep, endRun, newRun} from "../../gpt40k/app/static/live/run.js";
import {weight} from "../../gpt40k/app/static/live/protocol.js";

const settings = {model: "grimfuture", chars: 3, temperature: 0.8, top_k: 0, top_p: 1, seed: 7};
const header = (over = {}) => ({kind: "start", run: "r1", layers: 1, heads: 2, prompt: "ab", branch: false, keep: 0,
                                notes: [], settings, ...over});
const row = (position) => [position, 0, Buffer.from(Array.from({length: 2 * (position + 1)}, (_, k) => 10 * k))
  .toString("base64")];
const step = (i, t, rows = []) => ({i, t, p: 0.5, c: [[t, 0.5], ["x", 0.2]], r: rows, l: [[[t, 0.4]]], a: [[0.1, -0.2]]});

function written(over = {}) {
  const run = newRun(header(over));
  addStep(run, step(1, "c", [row(0), row(1)]));
  ["d", "e"].forEach((t, k) => addStep(run, step(k + 2, t, [row(k + 2)])));
  endRun(run, {kind: "end", run: run.id, notes: ["a note"], loss: null, own: [1.5, 3]});
  return run;
}

test("the arrow keys move through the grid, the mean column included, and stop at its edges", () => {
  assert.deepEqual(moveHead({layer: 0, head: 0}, "ArrowRight", 4, 6), {layer: 0, head: 1});
  assert.deepEqual(moveHead({layer: 0, head: 5}, "ArrowRight", 4, 6), {layer: 0, head: -1});  // the mean
  assert.deepEqual(moveHead({layer: 0, head: -1}, "ArrowRight", 4, 6), {layer: 0, head: -1});
  assert.deepEqual(moveHead({layer: 0, head: -1}, "ArrowLeft", 4, 6), {layer: 0, head: 5});
  assert.deepEqual(moveHead({layer: 3, head: 2}, "ArrowDown", 4, 6), {layer: 3, head: 2});
  assert.deepEqual(moveHead({layer: 3, head: 2}, "ArrowUp", 4, 6), {layer: 2, head: 2});
  assert.deepEqual(moveHead({layer: 1, head: 4}, "Home", 4, 6), {layer: 1, head: 0});
  assert.equal(moveHead({layer: 1, head: 4}, "a", 4, 6), null);
});

test("the arrow keys move through the text's characters; the first press lands on the newest", () => {
  assert.equal(moveChar(null, "ArrowLeft", 9), 9);
  assert.equal(moveChar(4, "ArrowLeft", 9), 3);
  assert.equal(moveChar(0, "ArrowLeft", 9), 0);
  assert.equal(moveChar(4, "ArrowRight", 9, true), 9);
  assert.equal(moveChar(4, "Home", 9), 0);
  assert.equal(moveChar(4, "Enter", 9), undefined);
  assert.equal(moveChar(null, "ArrowLeft", -1), undefined);  // nothing shown yet
});

test("a link holds the prompt, the settings, then the knock-out and each forced character in turn", () => {
  const run = written();
  const q = new URLSearchParams(linkQuery(run, "?__theme=dark&seed=99"));
  assert.equal(q.get("prompt"), "ab");
  assert.equal(q.get("seed"), "7");  // the run's, not the old address's
  assert.equal(q.get("__theme"), "dark");  // what is not the link's stays
  assert.deepEqual([q.get("chars"), q.get("temperature"), q.get("top_k"), q.get("top_p"), q.get("model")],
                   ["3", "0.8", "0", "1", "grimfuture"]);
  assert.equal(q.has("force") || q.has("knock"), false);
  const knocked = newRun(header({run: "r2", knockout: "L1H2"}), run);
  const branch = newRun(header({run: "r3", branch: true, keep: 1, prompt: "abc,"}), knocked);
  assert.deepEqual(branch.lineage, {knock: "L1H2", forces: [[2, ","]]});
  const again = new URLSearchParams(linkQuery(branch));
  assert.equal(again.get("knock"), "L1H2");
  assert.deepEqual(again.getAll("force"), ["2:,"]);
  assert.deepEqual(followUps("?" + linkQuery(branch)).ops,
                   [{kind: "knockout", heads: "L1H2"}, {kind: "force", step: 2, char: ","}]);
});

test("a link's follow-ups: only with a prompt; a malformed force is left out with a note", () => {
  assert.deepEqual(followUps("?seed=3&force=2:a").ops, []);
  const {ops, notes} = followUps("?prompt=x&force=2:ab&force=0:a&force=3:🙂");
  assert.deepEqual(ops, [{kind: "force", step: 3, char: "🙂"}]);
  assert.equal(notes.length, 2);
  assert.match(notes[0], /force=2:ab.*is not a step and one character/);
});

test("a saved run loads back as it was: text, choices, attention, lens, pushes, settings", () => {
  const run = written();
  const back = runFromTrace(JSON.parse(JSON.stringify(traceOf(run))));
  assert.deepEqual(back.steps.map((s) => s.t), ["c", "d", "e"]);
  assert.deepEqual(back.steps[1].c, run.steps[1].c);
  assert.deepEqual(back.steps[0].l, [[["c", 0.4]]]);
  assert.deepEqual(back.steps[0].a, [[0.1, -0.2]]);
  assert.deepEqual(back.settings, settings);
  assert.deepEqual(back.own, [1.5, 3]);
  assert.ok(back.done);
  for (const p of [0, 1, 2, 3]) {
    for (const h of [0, 1]) for (let k = 0; k <= p; k++) assert.equal(weight(back.rows.get(p), 2, 0, h, k), weight(run.rows.get(p), 2, 0, h, k));
  }
});

test("a file that is not a saved run is refused with what is wrong", () => {
  const good = traceOf(written());
  const refused = (data, why) => assert.throws(() => runFromTrace(data), (e) => why.test(e.message) &&
    /^This file is not a run the page can show/.test(e.message));
  refused({hello: 1}, /no "format": "gpt40k-trace"/);
  refused({...good, version: 9}, /version 9/);
  refused({...good, layers: 0}, /layers and heads/);
  refused({...good, steps: [{t: "ab", p: 0.5, c: []}]}, /step 1 is malformed/);
  refused({...good, rows: [[1, 0, "AAAA"]]}, /character 2 has the wrong size/);
  refused({...good, rows: [[1, 0, "%%%"]]}, /not base64/);
  refused({...good, rows: [[99, 0, "AA=="]]}, /malformed/);
  const odd = runFromTrace({...good, steps: good.steps.map((s) => ({...s, l: "x", a: [[1]]}))});
  assert.equal(odd.steps[0].l, null);  // a lens or pushes that do not fit are left out, not drawn wrong
  assert.equal(odd.steps[0].a, null);
});

test("on a Space a link is the Space's page; elsewhere, the page's own address", () => {
  const here = {origin: "https://someone-gpt40k.hf.space", pathname: "/"};
  assert.equal(linkBase(here, "https://huggingface.co/spaces/someone/gpt40k?x=1", true),
               "https://huggingface.co/spaces/someone/gpt40k");
  assert.equal(linkBase(here, "https://huggingface.co/spaces/someone/gpt40k", false), "https://someone-gpt40k.hf.space/");
  assert.equal(linkBase(here, "https://evil.example/spaces/a/b", true), "https://someone-gpt40k.hf.space/");
  assert.equal(linkBase({origin: "http://127.0.0.1:7860", pathname: "/"}, "", false), "http://127.0.0.1:7860/");
});
