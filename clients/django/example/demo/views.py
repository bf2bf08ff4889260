"""The example's pages: sign in as a demo user, see the bell, send notifications."""

from django.contrib import auth
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from herald_django import inbox_page, notify, send_signal

DEMO_USERS = ("ada", "grace")


def login(request):
    """No passwords in an example: pick who you are (a second browser can be the other)."""
    if request.method == "POST" and request.POST.get("username") in DEMO_USERS:
        name = request.POST["username"]
        # first_name is what presence shows (HERALD_USER_NAME = "get_full_name").
        user, _ = User.objects.get_or_create(username=name, defaults={"first_name": name.title()})
        auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("page")
    return render(request, "demo/login.html", {"users": DEMO_USERS})


@require_POST
def logout(request):
    auth.logout(request)
    return redirect("login")


@login_required
def page(request):
    """The bell's list, read on the server with its read state, and the cursor the page's
    stream resumes from, so nothing falls between the two."""
    return render(request, "demo/page.html", {"inbox": inbox_page(request.user, limit=10)})


@require_POST
@login_required
def wave(request):
    """A live signal from the server to everyone on the demo feed: nothing is stored. Sent
    when the request's transaction commits (ATOMIC_REQUESTS), as a notification would be."""
    send_signal("feed:demo", "wave", {"name": request.user.get_full_name()})
    return JsonResponse({}, status=202)


@require_POST
@login_required
def send(request):
    """Sends the form's notification. With ATOMIC_REQUESTS it commits with the request."""
    to = {"me": request.user, "broadcast": "broadcast", "feed": "feed:demo"}.get(
        request.POST.get("to"), request.user
    )
    try:
        sent = notify(to, request.POST.get("title", ""), level=request.POST.get("level", "info"),
                      data={"from": request.user.username})
    except ValidationError as err:
        return JsonResponse({"error": {"code": "invalid", "message": err.messages}}, status=400)
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"id": sent.id, "channel": sent.channel}, status=201)
    return redirect("page")
