"""Everything the running service imports is a runtime dependency, pinned exactly.

A green run in the test environment (which has the `dev` extra) would otherwise hide a
package that only the tests install: the development mail sink (aiosmtpd) and the time-zone
table (tzdata) were such packages. tests/system/test_fresh_install.py proves the same by starting
the service from a runtime-only environment; this test names the missing package in a second.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "promo"
# Calls that import a module named by a string (not an import statement).
DYNAMIC_IMPORTS = {"files", "import_module", "find_spec"}


def imported_modules(source: Path) -> set[str]:
    """Top-level modules a file imports: import statements anywhere in it (inside functions
    too, e.g. uvicorn in `promo serve`) and string arguments of resources.files() and friends."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in DYNAMIC_IMPORTS
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value.split(".")[0])
    return found


def third_party_imports() -> dict[str, set[str]]:
    """{top-level module: the promo files that import it}, standard library and promo left out."""
    by_module: dict[str, set[str]] = {}
    for source in PACKAGE.rglob("*.py"):
        for module in imported_modules(source) - set(sys.stdlib_module_names) - {"promo", "__future__"}:
            by_module.setdefault(module, set()).add(str(source.relative_to(ROOT)))
    return by_module


def runtime_closure() -> set[str]:
    """Distributions `pip install .` brings (no extras of promo), following every dependency's
    own requirements and the extras they ask for (uvicorn[standard])."""
    seen: set[str] = set()
    pending: list[tuple[str, frozenset[str]]] = [("promo", frozenset())]
    while pending:
        name, extras = pending.pop()
        key = f"{canonicalize_name(name)}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker or Marker("python_version >= '0'")
            if any(marker.evaluate({"extra": extra}) for extra in {"", *extras}):
                pending.append((requirement.name, frozenset(requirement.extras)))
    return {key.split("[")[0] for key in seen}


def test_every_third_party_module_promo_imports_comes_with_the_runtime_dependencies() -> None:
    providers = metadata.packages_distributions()
    runtime = runtime_closure()
    missing = {}
    for module, files in sorted(third_party_imports().items()):
        distributions = {canonicalize_name(d) for d in providers.get(module, [])}
        assert distributions, f"{module} (imported by {sorted(files)}) is not installed at all"
        if not distributions & runtime:
            missing[module] = sorted(files)
    assert not missing, f"imported by the service but only installed by the dev extra (or nothing): {missing}"


def test_the_check_sees_imports_inside_functions_and_by_name(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    import uvicorn\n\nfrom importlib import resources\n"
                      "resources.files('tzdata.zoneinfo')\n", encoding="utf-8")
    assert imported_modules(source) == {"uvicorn", "importlib", "tzdata"}


def test_runtime_dependencies_are_pinned_exactly_and_in_the_constraints_file() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    constraints = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[canonicalize_name(name)] = version
    for line in project["dependencies"]:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line}: not pinned exactly"
        assert constraints.get(canonicalize_name(requirement.name)) == spec.version, f"{line}: not in constraints.txt"
    for name in runtime_closure() - {"promo"}:
        assert name in constraints, f"{name} (a runtime dependency) has no pin in requirements/constraints.txt"
        assert metadata.version(name) == constraints[name], f"{name}: installed {metadata.version(name)}, pinned {constraints[name]}"
