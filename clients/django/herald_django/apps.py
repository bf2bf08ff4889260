"""The app config: registers the system checks and the test-database hook."""

from django.apps import AppConfig


class HeraldConfig(AppConfig):
    name = "herald_django"
    label = "herald_django"
    verbose_name = "herald"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks, testdb  # noqa: F401  (checks register themselves)

        testdb.connect(self)
