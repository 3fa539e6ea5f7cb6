"""Dependencies run one way: the import graph of the package has no circle, counting imports made
inside functions too (a lazy import that climbs is a circle hidden from the reader)."""

import ast
import subprocess
import sys
from pathlib import Path

import gpt40k

PACKAGE = Path(gpt40k.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path) -> tuple[set[str], list[str]]:
    """(modules of the package imported at module level, those imported inside functions)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top, nested = set(), []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # annotations only: never executed
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.ImportFrom) and child.level:
                base = package.rsplit(".", child.level - 1)[0] if child.level > 1 else package
                full = f"{base}.{child.module}" if child.module else base
                targets = [full] if child.module else [f"{base}.{a.name}" for a in child.names]
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module or ""]
                targets = [m for m in mods if m.startswith("gpt40k")]
            for target in targets:
                (nested.append(target) if inside else top.add(target))
            visit(child, inside)

    visit(tree, False)
    return top, nested


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        top, nested = package_imports(path)
        # "from . import resume" names a module; "from .model import GPT" names model
        targets = {t if t in modules else t.rpartition(".")[0] for t in (*top, *nested)}
        # importing gpt40k.hub.client runs gpt40k/hub/__init__.py first: an edge to the package too
        # (but not to this module's own packages, which are running already when it is imported)
        ancestors = {name.rsplit(".", i)[0] for i in range(name.count(".") + 1)}
        parents = {t.rsplit(".", i)[0] for t in targets for i in range(1, t.count("."))}
        edges[name] = (targets | parents) - ancestors
    return edges


def test_imports_inside_functions_only_go_down():
    """The one kind allowed: a command importing what it runs when it runs (--help stays fast; the
    page's Gradio only for the page)."""
    hidden = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := package_imports(p)[1])}
    assert hidden == {"gpt40k.train": ["gpt40k.training.trainer"], "gpt40k.app": ["gpt40k.app.serve"]}


def test_the_generation_side_of_the_app_needs_no_gradio():
    """Where only requirements-train.txt is installed (a Kaggle notebook, a GPU box), the page's
    step-by-step generation still imports; Gradio is needed by the page alone."""
    code = ("import sys; sys.modules['gradio'] = None\n"  # None in sys.modules: importing it fails
            "import gpt40k.app, gpt40k.app.transcript, gpt40k.app.registry, gpt40k.app.stepstream\n"
            "try:\n    import gpt40k.app.page\nexcept ImportError:\n    print('page needs gradio')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "page needs gradio"


def test_the_import_graph_has_no_circle():
    edges = graph()
    edges.pop("gpt40k")  # __init__ gathers the public names: everything below it
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in edges.get(node, ()):
            if nxt == "gpt40k":
                continue
            assert state.get(nxt) != "open", f"import circle: {' -> '.join(path + [nxt])}"
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in edges:
        if node not in state:
            visit(node, [node])


def test_the_core_does_not_climb():
    """model.py <- tokenizer/config <- checkpoint <- card/publish <- trainer, app, commands."""
    edges = graph()

    def below(name):
        seen, todo = set(), [name]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    high = {"gpt40k.checkpoint", "gpt40k.hub.card", "gpt40k.hub.publish", "gpt40k.train", "gpt40k.app",
            "gpt40k.generate", "gpt40k.training"} | {m for m in edges if m.startswith("gpt40k.training.")}
    assert below("gpt40k.model.model") & high == set()
    assert below("gpt40k.model.tokenizer") & (high | {"gpt40k.model.model"}) == set()
    assert "gpt40k.training.trainer" not in below("gpt40k.checkpoint") | below("gpt40k.hub.publish")


def test_the_lecture_file_imports_the_lecture_only():
    """model.py reads alone: its config, its save/load mixin and the errors; no CPU kernels, no
    sampler, no Hub or file code of its own (the mixin holds those)."""
    assert graph()["gpt40k.model.model"] == {"gpt40k.errors", "gpt40k.model.config", "gpt40k.model.pretrained"}


def test_the_folders_import_nothing_on_their_own():
    """training/ and hub/ gather nothing in __init__: importing one module of them imports that module."""
    for package in ("training", "hub"):
        assert package_imports(PACKAGE / package / "__init__.py") == (set(), [])
