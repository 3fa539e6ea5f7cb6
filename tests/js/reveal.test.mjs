// The reveal loop's pace (static/live/reveal.js) and the view's colours (static/live/colors.js).
import {test} from "node:test";
import assert from "node:assert/strict";
import {advance, frameSeconds, MAX_OWED_S} from "../../gpt40k/app/static/live/reveal.js";
import {LUT, SURPRISE_MAX, pct, rgb, show, surpriseAlpha, underline} from "../../gpt40k/app/static/live/colors.js";

// Characters shown after ``frames`` frames ``frame`` seconds apart, with ``arrived(t)`` written by time t.
function reveal(pace, frame, frames, arrived = () => 1e6) {
  let allowance = 0, shown = 0;
  for (let i = 1; i <= frames; i++) ({allowance, shown} = advance(allowance, frame, pace, arrived(i * frame), shown));
  return shown;
}

test("characters are shown at the pace, a fast computer's frames or a slow one's", () => {
  const slow = advance(0, 1 / 60, 35, 100, 10);  // 0.58 of a character owed: none yet
  assert.equal(slow.shown, 10);
  assert.ok(Math.abs(slow.allowance - 35 / 60) < 1e-9);
  assert.equal(advance(slow.allowance, 1 / 60, 35, 100, 10).shown, 11);  // the next frame shows one
  assert.equal(advance(5, 1, 35, 12, 11).shown, 12);  // no further than what has arrived
  assert.deepEqual(advance(0.3, 0.5, 0, 80, 3), {allowance: 0.3, shown: 80});  // "fastest": all at once
  for (const [pace, fps] of [[35, 60], [35, 14], [35, 5], [120, 30], [120, 60], [10, 20]]) {
    const shown = reveal(pace, 1 / fps, 10 * fps);  // ten seconds
    assert.ok(Math.abs(shown - 10 * pace) <= 1, `${pace}/s at ${fps} frames a second: ${shown} in 10 s`);
  }
});

test("after a wait for the server the text goes on at the pace, not in a burst", () => {
  const late = (t) => (t < 1.99 ? 0 : 500);  // nothing arrives for 2 s (frame 120), then everything
  const first = reveal(35, 1 / 60, 120, late);  // the first frame that has them: what is owed, at most
  assert.equal(first, Math.floor(35 * MAX_OWED_S));
  const second = reveal(35, 1 / 60, 180, late);  // a second later: the pace again
  assert.ok(Math.abs(second - first - 35) <= 1, `${second - first} in the next second`);
});

test("a frame's time is capped, so a hidden tab does not flood the text when it comes back", () => {
  assert.equal(frameSeconds(1000, 0), 0);
  assert.equal(frameSeconds(1016, 1000), 0.016);
  assert.equal(frameSeconds(9000, 1000), 0.25);
});

test("colours run from white to dark red; labels stay readable", () => {
  assert.equal(rgb(0), "rgb(255,255,255)");
  assert.equal(rgb(255), "rgb(120,0,10)");
  assert.equal(LUT.length, 256 * 3);
  assert.equal(show(" "), "␣");
  assert.equal(show("\n"), "⏎");
  assert.equal(show("a"), "a");
  assert.deepEqual([0.0001, 0.05, 0.5, 0.999].map(pct), ["<0.1%", "5.0%", "50%", "100%"]);
  assert.equal(surpriseAlpha(1), 0);  // certain: no shade
  assert.equal(surpriseAlpha(null), 0);
  assert.ok(surpriseAlpha(0.05) > 0.4 && surpriseAlpha(1e-9) === SURPRISE_MAX);
});

test("attention on the text is a line under it: none below 1%, thicker and darker with the weight", () => {
  const q = (w) => Math.round(255 * Math.sqrt(w));
  assert.equal(underline(q(0.005)), null);
  const [light, mid, full] = [0.02, 0.3, 1].map((w) => underline(q(w)));
  assert.ok(light.px < mid.px && mid.px < full.px && full.px === 5);
  assert.equal(full.colour, rgb(255));
  assert.equal(light.colour, rgb(150));  // never paler than this: a thin line still shows
});
