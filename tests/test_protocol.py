"""Both sides of the step stream agree: what StepStream (Python) writes is what protocol.js (the
page) reads, key for key and byte for byte; and the page's modules bundle into its script."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from conftest import ROOT
from gpt40k.app import stepstream
from gpt40k.app.livejs import LIVE_DIR, live_script
from gpt40k.app.request import GenerationRequest
from test_app_logic import run, small_model

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js runs the page's modules (apt-get install nodejs)")


def node(script: str, data=None) -> dict:
    """Run an ES-module ``script`` with ``data`` (JSON) on stdin; its printed JSON."""
    done = subprocess.run([NODE, "--input-type=module", "-e", script], input=json.dumps(data), text=True,
                          capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


READ = """
import * as p from "./gpt40k/app/static/live/protocol.js";
import {readFileSync} from "node:fs";
const data = JSON.parse(readFileSync(0, "utf8"));
const out = {QUANT_LEVELS: p.QUANT_LEVELS, START_KEYS: p.START_KEYS, STEP_KEYS: p.STEP_KEYS, END_KEYS: p.END_KEYS};
const update = p.readUpdate(data.update, null);
out.start = update.start;
out.steps = update.steps.map((m) => ({keys: Object.keys(m), i: m.i, t: m.t,
  rows: m.r.map((r) => { const row = p.decodeRow(r); return [row.position, row.fk, Array.from(row.q, p.weightOf)]; })}));
out.end = p.readUpdate(data.end, update.startRaw);
console.log(JSON.stringify(out));
"""


def test_the_page_reads_what_the_server_writes():
    transcript, events = run(small_model(), GenerationRequest("the sea", 12, 1.0, seed=0))
    messages = stepstream.StepStream(2, 3)
    update = [messages.start(transcript), *(messages.step(e) for e in events)]
    got = node(READ, {"update": update, "end": messages.end(transcript)})
    assert got["QUANT_LEVELS"] == stepstream.QUANT_LEVELS
    assert tuple(got["START_KEYS"]) == stepstream.START_KEYS and tuple(got["STEP_KEYS"]) == stepstream.STEP_KEYS
    assert tuple(got["END_KEYS"]) == stepstream.END_KEYS
    assert tuple(got["start"]) == stepstream.START_KEYS and got["start"]["prompt"] == "the sea"
    assert [tuple(s["keys"]) for s in got["steps"]] == [stepstream.STEP_KEYS] * 12
    assert [(s["i"], s["t"]) for s in got["steps"]] == [(e.index, e.step.char) for e in events]
    for step, event in zip(got["steps"], events):
        for (position, first_key, weights), row in zip(step["rows"], event.rows):
            assert (position, first_key) == (row.position, row.first_key)
            python_side = stepstream.dequantise(stepstream.quantise(row.weights)).reshape(-1)
            np.testing.assert_allclose(weights, python_side, atol=1e-6)
    assert tuple(got["end"]) == stepstream.END_KEYS and got["end"]["steps"] == 12


TRACE = """
import * as p from "./gpt40k/app/static/live/protocol.js";
import {runFromTrace, traceOf} from "./gpt40k/app/static/live/trace.js";
import {readFileSync} from "node:fs";
const trace = JSON.parse(readFileSync(0, "utf8"));
const run = runFromTrace(trace);
const again = traceOf(run);
console.log(JSON.stringify({TRACE_KEYS: p.TRACE_KEYS, TRACE_FORMAT: p.TRACE_FORMAT,
  same: JSON.stringify(again) === JSON.stringify(trace), text: run.prompt + run.steps.map((s) => s.t).join(""), rows: run.rows.size, settings: run.settings}));
"""


def test_a_run_the_server_traces_is_one_the_page_loads_and_saves_the_same():
    transcript, events = run(small_model(), GenerationRequest("the sea", 12, 1.0, seed=4), explain=True)
    trace = stepstream.StepStream(2, 3, model="tiny").trace(transcript)
    got = node(TRACE, json.loads(json.dumps(trace)))
    assert tuple(got["TRACE_KEYS"]) == stepstream.TRACE_KEYS and got["TRACE_FORMAT"] == stepstream.TRACE_FORMAT
    assert got["same"]  # saved again by the page, key for key and byte for byte
    assert got["text"] == transcript.text and got["rows"] == len(transcript.rows)
    assert got["settings"] == {"model": "tiny", "chars": 12, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 4}


def test_the_modules_bundle_into_one_valid_script(tmp_path):
    script = tmp_path / "live.js"
    script.write_text(f"function onLoad(element, props, trigger, watch) {{\n{live_script()}}}\n", encoding="utf-8")
    done = subprocess.run([NODE, "--check", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    modules = {p.name for p in LIVE_DIR.glob("*.js")}
    assert all(f"const __live_{m.removesuffix('.js')} = " in live_script() for m in modules)  # every module is used


def test_the_bundler_refuses_what_it_does_not_understand(tmp_path):
    (tmp_path / "main.js").write_text('import * as all from "./x.js";\nexport function mount() {}\n')
    (tmp_path / "x.js").write_text("export default 1;\n")
    with pytest.raises(ValueError, match="only `import"):
        live_script(tmp_path)
    (tmp_path / "main.js").write_text('import {a} from "./x.js";\nexport function mount() {}\n')
    (tmp_path / "x.js").write_text('import {mount} from "./main.js";\nexport const a = 1;\n')
    with pytest.raises(ValueError, match="circle"):
        live_script(tmp_path)
