"""`GET herald/token/`: a fresh stream token for the signed-in user, for herald.js's getToken."""

from django.http import JsonResponse
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
