"""Package discovery for the DESIGN.md layout.

`protocols/`, `plugins/`, `migrations/` and `admin/` are top-level folders in the
repository but install as `enroll.protocols`, `enroll.plugins`, `enroll.migrations` and
`enroll.admin`; this walks each folder so a new sub-package needs no edit here.
Everything else lives in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup

ROOTS = {"enroll": "enroll", "protocols": "enroll.protocols", "plugins": "enroll.plugins",
         "migrations": "enroll.migrations", "admin": "enroll.admin"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, dotted in ROOTS.items():
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder)
            name = ".".join([dotted, *rel.parts]) if rel.parts else dotted
            packages.append(name)
            package_dir[name] = str(init.parent)
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
