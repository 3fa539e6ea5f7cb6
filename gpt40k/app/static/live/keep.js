// Keeping a run: the chosen head's map as a picture (with its labels), the whole run as a file
// (trace.js), and a file loaded back. The browser does it all; nothing goes to the server.
import {traceOf} from "./trace.js";

export function download(name, blob) {
  const a = Object.assign(document.createElement("a"), {href: URL.createObjectURL(blob), download: name});
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}

export function saveTrace(run) {
  const json = JSON.stringify(traceOf(run));
  download(`gpt40k-run-${run.id}.json`, new Blob([json], {type: "application/json"}));
}

// The big map as drawn, under a title line (what, which head, which steps) and over its colour scale.
export function mapPicture(dom, title) {
  const map = dom.big, dpr = map.width / Math.max(1, map.clientWidth), pad = 10 * dpr, line = 20 * dpr;
  const c = document.createElement("canvas");
  c.width = map.width + 2 * pad;
  c.height = map.height + 2 * line + 2 * pad;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.fillStyle = "#1c1917";
  ctx.font = `${13 * dpr}px ui-sans-serif, system-ui, sans-serif`;
  ctx.textBaseline = "middle";
  ctx.fillText(title, pad, pad + line / 2);
  ctx.drawImage(map, pad, pad + line);
  const y = pad + line + map.height + line / 2, scaleWidth = 160 * dpr;
  ctx.fillText("0", pad, y);
  ctx.drawImage(dom.scale, pad + 12 * dpr, y - 5 * dpr, scaleWidth, 10 * dpr);
  ctx.fillText("1   attention weight (square-root scale)", pad + 18 * dpr + scaleWidth, y);
  return c;
}

export function savePicture(dom, title, name) {
  mapPicture(dom, title).toBlob((blob) => download(name, blob), "image/png");
}

// The file the visitor chose, as parsed JSON (a Promise); an Error in plain words otherwise.
export async function readFile(file) {
  if (file.size > 64 * 1024 * 1024) throw new Error(`${file.name} is ${Math.round(file.size / 2 ** 20)} MB: a saved run is far smaller.`);
  try {
    return JSON.parse(await file.text());
  } catch {
    throw new Error(`${file.name} is not JSON: load a file that the page's “Save run” wrote.`);
  }
}
