"""The live view's ES modules (static/live/*.js) as the one script body that gr.HTML's js_on_load takes.

The modules are real ES modules, so Node's test runner imports them as they are (tests/js/). A
js_on_load body is a function body, where ``import`` cannot stand, and the page has no bundler
in its build; so this file does the little a bundler would: each module becomes a function
scope that returns its exports, placed after the modules it imports, and each
``import {a, b} from "./x.js"`` becomes ``const {a, b} = <x's exports>``. Only that form of
import and ``export function|const|let|class NAME`` are understood; anything else is an error
here, when the page is built, not a broken page.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

LIVE_DIR = Path(__file__).with_name("static") / "live"
ENTRY = "main.js"
IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([\w-]+\.js)";[ \t]*$', re.M)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)


def _scope_name(module: str) -> str:
    return "__live_" + module.removesuffix(".js").replace("-", "_")


def _ordered(folder: Path, entry: str) -> list[str]:
    """Modules in an order where each comes after those it imports (depth first from ``entry``)."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError(f"static/live: {name} imports itself through others (a circle)")
        visiting.add(name)
        for _, dep in IMPORT.findall((folder / name).read_text(encoding="utf-8")):
            visit(dep)
        visiting.discard(name)
        order.append(name)

    visit(entry)
    return order


def _scoped(folder: Path, name: str) -> str:
    source = (folder / name).read_text(encoding="utf-8")
    exports = [m[2] for m in EXPORT.finditer(source)]
    body = IMPORT.sub(lambda m: f"const {{{m[1].strip()}}} = {_scope_name(m[2])};", source)
    body = EXPORT.sub(lambda m: m[0].removeprefix("export").lstrip(), body)
    stray = [line for line in body.splitlines() if re.match(r"\s*(import|export)\b", line)]
    if stray:
        raise ValueError(f"static/live/{name}: only `import {{...}} from \"./x.js\"` and `export "
                         f"function|const|let|class` are bundled; found {stray[0].strip()!r}")
    return f"const {_scope_name(name)} = (() => {{\n{body}\nreturn {{{', '.join(exports)}}};\n}})();\n"


@lru_cache(maxsize=4)
def live_script(folder: Path = LIVE_DIR, entry: str = ENTRY) -> str:
    """The js_on_load body: every module of ``folder`` that ``entry`` needs, then ``mount(...)``."""
    modules = "".join(_scoped(folder, name) for name in _ordered(folder, entry))
    return modules + f"{_scope_name(entry)}.mount(element, props, trigger, watch);\n"
