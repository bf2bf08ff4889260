"""System checks (`manage.py check`, and every runserver and test run): settings herald
would refuse are reported at startup, not on the first page that needs them."""

from urllib.parse import urlsplit

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from . import conf


@checks.register()
def check_settings(app_configs, **kwargs):
    errors = []
    url = getattr(conf.settings, "HERALD_URL", None)
    parts = urlsplit(str(url)) if url else None
    if not parts or parts.scheme not in ("http", "https") or not parts.netloc:
        errors.append(checks.Error(
            "HERALD_URL is not set to herald's public base URL.",
            hint='For example HERALD_URL = "https://herald.example.com" (the browser loads '
                 "herald.js and opens its streams there).",
            id="herald_django.E001",
        ))
    elif parts.query or parts.fragment:
        errors.append(checks.Error(
            "HERALD_URL has a query or fragment.", hint="Give the base URL only.",
            id="herald_django.E001",
        ))
    settings_read = (
        (conf.jwt_secret, "E002"),
        (conf.token_lifetime, "E003"),
        (conf.channels_hook, "E004"),
        # Only when set: without it, it is HERALD_URL, which E001 checks.
        (lambda: getattr(conf.settings, "HERALD_INTERNAL_URL", None) and conf.internal_url(),
         "E006"),
        (conf.user_name_hook, "E007"),
        (conf.publish_hook, "E008"),
        (conf.script_source, "E009"),
    )
    for read, check_id in settings_read:
        try:
            read()
        except ImproperlyConfigured as err:
            errors.append(checks.Error(str(err), id=f"herald_django.{check_id}"))
    return errors


@checks.register(checks.Tags.urls)
def check_urls(app_configs, **kwargs):
    try:
        reverse("herald:token")
    except NoReverseMatch:
        return [checks.Error(
            "The token view is not in the URLconf.",
            hint='Add path("herald/", include("herald_django.urls")) to your urlpatterns.',
            id="herald_django.E005",
        )]
    return []
