"""Build hook (the rest of the metadata is in pyproject.toml): the package carries what it
needs of herald, so a wheel works on its own: herald's schema (`herald_django/schema/`, each
of herald's `migrations/*/up.sql`) and browser files (`herald_django/web/`: `herald.js` and
the service worker `herald-sw.js`).

`scripts/wheel` builds from a copy of this directory into which it has put them: then they
are package data like any other. Built straight from a checkout of herald (`pip install
clients/django`), this copies them from the checkout into the build instead."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
HERALD = HERE.parent.parent
WEB_FILES = ("herald.js", "herald-sw.js")


class BuildWithHeraldFiles(build_py):
    def run(self):
        super().run()
        if (HERE / "herald_django" / "schema").is_dir():
            return  # a copy made by scripts/wheel: already package data
        migrations = HERALD / "migrations"
        if not migrations.is_dir():
            raise SystemExit(
                f"herald's migrations are not at {migrations}: build herald-django with "
                "clients/django/scripts/wheel in a checkout of herald"
            )
        package = Path(self.build_lib) / "herald_django"
        schema = package / "schema"
        schema.mkdir(parents=True, exist_ok=True)
        for up in sorted(migrations.glob("*/up.sql")):
            shutil.copyfile(up, schema / f"{up.parent.name}.sql")
        web = package / "web"
        web.mkdir(parents=True, exist_ok=True)
        for name in WEB_FILES:
            shutil.copyfile(HERALD / "web" / name, web / name)


setup(cmdclass={"build_py": BuildWithHeraldFiles})
