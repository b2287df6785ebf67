"""Dependencies point down: every import of every mrcnn module (those
inside functions too) against the order of mrcnn._layering, and no import
cycle. The imports are read from the source with ast, so a lazy import
that would only run on some path counts as much as one at the top."""

import ast
import os

import pytest

import mrcnn
from mrcnn import _layering

PACKAGE_DIR = os.path.dirname(mrcnn.__file__)


def module_files():
    """{module name: file} of every .py file of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path[:-3], os.path.dirname(PACKAGE_DIR))
            module = parts.replace(os.sep, ".")
            if module.endswith(".__init__"):
                module = module[:-len(".__init__")]
            found[module] = path
    return found


MODULES = module_files()


def imported_modules(module, path):
    """The mrcnn modules that module's source imports (a name imported
    from a package is the submodule where one of that name exists)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if path.endswith("__init__.py") \
        else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                child = "{}.{}".format(base, alias.name)
                found.add(child if child in MODULES else base)
    return {m for m in found if m == "mrcnn" or m.startswith("mrcnn.")}


GRAPH = {module: imported_modules(module, path)
         for module, path in MODULES.items()}


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layering.layer_of(m) is None)
    assert missing == [], "add these to mrcnn._layering.LAYERS: {}".format(
        missing)


def test_imports_point_down():
    upward = []
    for module, imports in sorted(GRAPH.items()):
        level, name = _layering.layer_of(module)
        for target in sorted(imports):
            target_layer = _layering.layer_of(target)
            assert target_layer is not None, (module, target)
            if target_layer[0] < level:
                upward.append("{} ({}) imports {} ({})".format(
                    module, name, target, target_layer[1]))
    assert upward == [], "\n".join(upward)


def find_cycle(graph):
    """One import cycle of graph as a list of modules, or None (depth-first
    search with colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in colour:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        colour[node] = "black"
        return None

    for node in sorted(graph):
        if node not in colour:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def package_edges(graph):
    """The graph without the arrows from a package's __init__ to its own
    submodules (re-exports of the package's contents, not dependencies)."""
    return {m: {t for t in targets if not t.startswith(m + ".")}
            for m, targets in graph.items()}


def test_no_import_cycle():
    assert find_cycle(package_edges(GRAPH)) is None, " -> ".join(
        find_cycle(package_edges(GRAPH)))


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
])
def test_find_cycle_on_hand_made_graphs(graph, expected):
    assert find_cycle(graph) == expected


def test_layer_of_takes_the_longest_prefix_and_the_package_alone():
    assert _layering.layer_of("mrcnn.network.rpn")[1] == "parts"
    assert _layering.layer_of("mrcnn.utils")[1] == "faces"
    assert _layering.layer_of("mrcnn")[1] == "foundation"
    assert _layering.layer_of("mrcnn.not_listed") is None


def test_an_upward_import_is_reported(tmp_path):
    """The reader sees a lazy upward import inside a function."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from mrcnn import model\n")
    imports = imported_modules("mrcnn.structures.probe", str(source))
    assert imports == {"mrcnn.model"}
    assert _layering.layer_of("mrcnn.model")[0] < \
        _layering.layer_of("mrcnn.structures.probe")[0]


def test_the_readme_map_lists_every_subpackage_and_no_other():
    """README's "Layout" table names each folder of mrcnn once, as
    `mrcnn/<package>/`, and _layering gives each a layer."""
    readme = open(os.path.join(os.path.dirname(PACKAGE_DIR), "README.md"),
                  encoding="utf-8").read()
    layout = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    listed = {line.split("`mrcnn/", 1)[1].split("/", 1)[0]
              for line in layout.splitlines()
              if line.startswith("| `mrcnn/") and "/`" in line.split("|")[1]}
    folders = {name for name in os.listdir(PACKAGE_DIR)
               if os.path.isfile(os.path.join(PACKAGE_DIR, name,
                                              "__init__.py"))}
    assert listed == folders
    assert all(_layering.layer_of("mrcnn." + name) for name in folders)
