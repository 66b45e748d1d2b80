"""One home for every name: each name is imported from one module across the repository, no two pa3 modules
define the same public name, and settings reach pa3 through its entry points, not through os.environ."""
import ast
import json
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Each task's check file stands alone for the students, helpers included.
OWN_NAMESPACES = ("pa3/assignment/checks/",)
# Modules that may read os.environ: the entry points, where PA3_HOME/PA3_CACHE are resolved, torchrun's variables,
# and two more: the CPU's kernel limits (pa3.device) and a grading child's environment (pa3.assignment.processes).
READS_ENVIRON = {"pa3/__init__.py", "pa3/cli.py", "pa3/notebook_setup.py", "pa3/distributed.py", "pa3/device.py",
                 "pa3/assignment/processes.py"}


def _sources():
    """(path relative to the repo, parsed module) of every Python file and notebook the repository ships."""
    for path in sorted([*REPO.glob("pa3/**/*.py"), *REPO.glob("tests/**/*.py"), *REPO.glob("benchmarks/**/*.py"),
                        REPO / "conftest.py"]):
        yield path.relative_to(REPO).as_posix(), ast.parse(path.read_text())
    for path in sorted(REPO.glob("notebooks/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
        yield path.relative_to(REPO).as_posix(), ast.parse(code)


def _is_module(dotted):
    path = REPO / dotted.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _package_of(dotted):
    return dotted.rsplit(".", 1)[0] if "." in dotted else None


def test_every_name_is_imported_from_one_module():
    """A name offered by a package's __init__ comes from the package; inside a package, its files import their
    siblings by submodule (the __init__ is not done while they load)."""
    homes = defaultdict(lambda: defaultdict(list))  # name -> module -> files
    for path, tree in _sources():
        inside = path.removesuffix(".py").replace("/", ".")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pa3")):
                continue
            for alias in node.names:
                if _is_module(f"{node.module}.{alias.name}"):  # from pa3 import labels: a module, not a name
                    continue
                package = _package_of(node.module)
                if package and inside.startswith(package + ".") and package != "pa3":
                    continue  # a sibling inside the package
                homes[alias.name][node.module].append(path)
    twice = {name: {m: files[:3] for m, files in modules.items()} for name, modules in homes.items()
             if len(modules) > 1}
    assert twice == {}, "names imported from more than one module (import each from its home)"


def test_no_two_pa3_modules_define_the_same_public_name():
    defined = defaultdict(list)
    for path, tree in _sources():
        if not path.startswith("pa3/") or path.startswith(OWN_NAMESPACES) or path.endswith("__main__.py"):
            continue
        for node in tree.body:
            targets = ([node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else
                       [t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign) else [])
            for name in targets:
                if not name.startswith("_") and name not in ("main", "__all__"):
                    defined[name].append(path)
    assert {name: paths for name, paths in defined.items() if len(paths) > 1} == {}


def test_settings_are_read_from_the_environment_at_the_edges_only():
    readers = set()
    for path, tree in _sources():
        if not path.startswith("pa3/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                readers.add(path)
    assert readers <= READS_ENVIRON, f"os.environ read in {sorted(readers - READS_ENVIRON)}"
