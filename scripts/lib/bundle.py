"""Helpers of scripts/build-bundles.sh, standard library and ``packaging`` only.

    bundle.py requirements FILE [--without NAME]...   the pinned closure of FILE's requirements
    bundle.py zip FOLDER ZIPFILE                      FOLDER's contents at the zip's root
    bundle.py modules MAIN                            the files of jobqueue MAIN imports
    bundle.py template-runtime TEMPLATE               the Python (3.13) a SAM template deploys

A bundle's code is an allow-list derived from the imports, not a pattern of what to leave out:
every ``import jobqueue...`` / ``from jobqueue... import ...`` in MAIN, followed through each
module it reaches (imports inside functions included, since the functions import lazily). A
package that loads its modules itself (``pkgutil.iter_modules``: the job handlers, a plug-in
folder) is taken whole, and a module that reads a data file of the package
(``files("jobqueue").joinpath(...)``) takes that file.

The closure is read from the installed distributions, so a bundle pins exactly the versions
the tests ran with: the function's own requirements.txt is the one list of its versions.
"""

from __future__ import annotations

import ast
import re
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def top_level(path: Path) -> list[Requirement]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def closure(requirements: list[Requirement], without: set[str]) -> dict[str, str]:
    """Every distribution the requirements need here, with its installed version."""
    pinned: dict[str, str] = {}
    pending = [(r, frozenset(r.extras)) for r in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in without or (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = metadata.distribution(name)
        pinned[name] = distribution.version
        for line in distribution.requires or []:
            child = Requirement(line)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(e) for e in environments):
                pending.append((child, frozenset(child.extras)))
    return pinned


def _module_file(source: Path, name: str) -> Path | None:
    base = source.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def modules(main_file: Path, source: Path) -> list[str]:
    """The files (relative to ``source``) of the package that ``main_file`` needs."""
    needed: set[Path] = set()
    pending = [main_file]
    while pending:
        tree = ast.parse(pending.pop().read_text(encoding="utf-8"))
        names: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.append(node.module)
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.split(".")[0] != "jobqueue":
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # the packages on the way, and the module
                found = _module_file(source, ".".join(parts[:depth]))
                if found is not None and found not in needed:
                    needed.add(found)
                    pending.append(found)
                    text = found.read_text(encoding="utf-8")
                    if found.name == "__init__.py" and "iter_modules(" in text:
                        for child in found.parent.rglob("*.py"):
                            if child not in needed:
                                needed.add(child)
                                pending.append(child)
                    for data in re.findall(r'joinpath\("([^"]+)"\)', text):
                        needed.add(source / "jobqueue" / data)
    return sorted(str(path.relative_to(source)) for path in needed)


def template_runtime(template: Path) -> str:
    """The default of the template's PythonRuntime parameter, as 3.13."""
    text = template.read_text(encoding="utf-8")
    match = re.search(r"PythonRuntime:\s*\n(?:\s+\w+:.*\n)*?\s+Default:\s*python(3\.\d+)", text)
    if match is None:
        raise SystemExit(f"{template}: no PythonRuntime parameter with a python3.N default")
    return match.group(1)


def main(argv: list[str]) -> int:
    if argv[:1] == ["modules"] and len(argv) == 2:
        for name in modules(Path(argv[1]), Path("src")):
            print(name)
        return 0
    if argv[:1] == ["template-runtime"] and len(argv) == 2:
        print(template_runtime(Path(argv[1])))
        return 0
    if argv[:1] == ["requirements"] and len(argv) >= 2:
        pairs = zip(argv[2::2], argv[3::2], strict=False)
        without = {canonicalize_name(name) for flag, name in pairs if flag == "--without"}
        for name, version in sorted(closure(top_level(Path(argv[1])), without).items()):
            print(f"{name}=={version}")
        return 0
    if argv[:1] == ["zip"] and len(argv) == 3:
        folder = Path(argv[1])
        with zipfile.ZipFile(argv[2], "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if "__pycache__" not in path.parts:
                    archive.write(path, path.relative_to(folder))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
