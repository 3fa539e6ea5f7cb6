// A run as a link: the page's address holds its prompt and settings, and what was done to it (heads
// knocked out, then characters forced, in turn), so that opening the link writes the same text.
// The server fills the controls from the link and writes (page.py, from_link); the page then does
// the rest itself, as a visitor would (main.js).

export const LINK_SETTINGS = ["model", "chars", "temperature", "top_k", "top_p", "seed"];

const LINK_KEYS = ["prompt", ...LINK_SETTINGS, "knock", "force"];

// The query string of `run`'s link ("prompt=...&seed=0&..."), without the "?"; the parameters of
// `others` that are not the link's own (Gradio's ?__theme=dark, say) are kept.
export function linkQuery(run, others = "") {
  const q = new URLSearchParams(others);
  LINK_KEYS.forEach((key) => q.delete(key));
  q.set("prompt", run.prompt);
  for (const key of LINK_SETTINGS) {
    const value = run.settings ? run.settings[key] : null;
    if (value !== null && value !== undefined) q.set(key, String(value));
  }
  if (run.lineage.knock) q.set("knock", run.lineage.knock);
  for (const [step, char] of run.lineage.forces) q.append("force", `${step}:${char}`);
  return q.toString();
}

// The address a link starts with. On a Hugging Face Space the page runs in an iframe (*.hf.space)
// inside the Space's own page, which passes its query on to the iframe when it loads: the link to
// share is the Space page's (the referrer), not the iframe's.
export const SPACE_PAGE = "https://huggingface.co";
export function linkBase(here, referrer, embedded) {
  const space = embedded && /^https:\/\/huggingface\.co\/spaces\/[^/?#]+\/[^/?#]+/.exec(referrer || "");
  return space ? space[0] : here.origin + here.pathname;
}

// What the page does after a link's first run: [{kind: "knockout", heads}, {kind: "force", step, char}...],
// and notes on the parts of the link it cannot follow.
export function followUps(search) {
  const q = new URLSearchParams(search), ops = [], notes = [];
  if (!q.has("prompt")) return {ops, notes};
  const knock = (q.get("knock") || "").trim();
  if (knock) ops.push({kind: "knockout", heads: knock.slice(0, 2000)});
  for (const f of q.getAll("force")) {
    const m = /^(\d{1,4}):([\s\S])$/u.exec(f);
    if (m && +m[1] >= 1) ops.push({kind: "force", step: +m[1], char: m[2]});
    else notes.push(`The link's “force=${f.slice(0, 20)}” is not a step and one character (like 12:a): left out.`);
  }
  return {ops, notes};
}
