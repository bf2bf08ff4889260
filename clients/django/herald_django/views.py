"""`GET herald/token/`: a fresh stream token for the signed-in user, for herald.js's getToken.
`GET herald/sw.js`: herald's service worker, for `herald.enablePush()`."""

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


def service_worker(request):
    """herald's `web/herald-sw.js` (copied into the package when it is built), served from the
    app's origin: a browser registers service workers only from the page's own origin, and
    herald usually has another. Its scope is `herald/`, which is enough: a worker receives its
    pushes and opens pages whatever pages it controls.

    Use it as `herald.enablePush({serviceWorker: "{% url 'herald:service_worker' %}"})`.
    """
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", "Use GET.", Allow="GET, HEAD")
    body = Path(__file__).with_name("herald-sw.js").read_bytes()
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    # Revalidated, so a new herald version's worker replaces the old on the next visit.
    response["Cache-Control"] = "no-cache"
    return response
