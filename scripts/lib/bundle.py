"""Helpers of scripts/build-bundles.sh, standard library and ``packaging`` only.

    bundle.py requirements FILE [--without NAME]...   the pinned closure of FILE's requirements
    bundle.py zip FOLDER ZIPFILE                      FOLDER's contents at the zip's root

The closure is read from the installed distributions, so a bundle pins exactly the versions
the tests ran with: the function's own requirements.txt is the one list of its versions.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> int:
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
