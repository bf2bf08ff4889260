"""`GET herald/token/`: a fresh stream token for the signed-in user, for herald.js's getToken.
`GET herald/sw.js`: herald's service worker, for `herald.enablePush()`.
`GET herald/herald.js`: the herald.js this package was built with (`HERALD_JS = "app"`)."""

from pathlib import Path

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from . import tokens


def _error(status, code, message, **headers):
    # herald's error shape, so one client handles both.
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@never_cache
def token(request):
    """`{"token", "expires_in"}` for the session's user; 401 JSON when signed out.

    Not `@login_required`: its redirect to an HTML login page is no answer for `fetch()`.
    """
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", "Use GET.", Allow="GET, HEAD")
    user = request.user
    if not user.is_authenticated:
        return _error(401, "not_signed_in", "Sign in to receive notifications.",
                      WWW_Authenticate='Session realm="herald"')
    if not user.is_active:
        return _error(401, "inactive_user", "This account is inactive.",
                      WWW_Authenticate='Session realm="herald"')
    token, expires_in = tokens.mint(user)
    return JsonResponse({"token": token, "expires_in": expires_in})


# herald's web/ files, copied into the package when it is built (scripts/wheel); a package
# used straight from herald's checkout reads the checkout's.
WEB_DIR = Path(__file__).with_name("web")
CHECKOUT_WEB_DIR = Path(__file__).resolve().parent.parent.parent.parent / "web"


def bundled(name):
    """The bytes of herald's `web/<name>` as this package carries it."""
    path = WEB_DIR / name
    if not path.exists() and (CHECKOUT_WEB_DIR / name).exists():
        path = CHECKOUT_WEB_DIR / name
    return path.read_bytes()


def _javascript(request, name):
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", "Use GET.", Allow="GET, HEAD")
    response = HttpResponse(bundled(name), content_type="text/javascript; charset=utf-8")
    # Revalidated, so a new version replaces the old on the next visit.
    response["Cache-Control"] = "no-cache"
    return response


def service_worker(request):
    """herald's `web/herald-sw.js`, served from the app's origin: a browser registers service
    workers only from the page's own origin, and herald usually has another. Its scope is
    `herald/`, which is enough: a worker receives its pushes and opens pages whatever pages
    it controls.

    Use it as `herald.enablePush({serviceWorker: "{% url 'herald:service_worker' %}"})`.
    """
    return _javascript(request, "herald-sw.js")


def script(request):
    """herald's `web/herald.js` as of this package's build, from the app's origin: for
    `HERALD_JS = "app"` (a Content-Security-Policy of `script-src 'self'`, or a page that must
    not depend on herald's version of the client)."""
    return _javascript(request, "herald.js")
