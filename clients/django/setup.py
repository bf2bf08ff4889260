"""Build hook (the rest of the metadata is in pyproject.toml): herald's migrations become the
package's `schema/` when the package is built, so the SQL exists once, in herald's
`migrations/`, and every build of herald-django carries the schema of its own checkout. So does
herald's service worker (`web/herald-sw.js`)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERALD = Path(__file__).resolve().parent.parent.parent
MIGRATIONS = HERALD / "migrations"
# herald's service worker, which the app serves from its own origin (views.service_worker).
SERVICE_WORKER = HERALD / "web" / "herald-sw.js"


class BuildWithSchema(build_py):
    def run(self):
        super().run()
        if not MIGRATIONS.is_dir():
            raise SystemExit(
                f"herald's migrations are not at {MIGRATIONS}: build herald-django from a "
                "checkout of herald (pip install <herald>/clients/django)"
            )
        schema = Path(self.build_lib) / "herald_django" / "schema"
        schema.mkdir(parents=True, exist_ok=True)
        for up in sorted(MIGRATIONS.glob("*/up.sql")):
            shutil.copyfile(up, schema / f"{up.parent.name}.sql")
        shutil.copyfile(SERVICE_WORKER, Path(self.build_lib) / "herald_django" / "herald-sw.js")


setup(cmdclass={"build_py": BuildWithSchema})
