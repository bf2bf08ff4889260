"""`{% load herald %}`: `{% herald_script %}` and `{% herald_unread_badge %}`.

Both render nothing for anonymous users. They find the user through `request` (the
`request` context processor, in every new project's settings) or `user` (the `auth` one).
"""

import logging

from django import template
from django.db import DatabaseError, connections, router, transaction
from django.template.loader import render_to_string
from django.urls import reverse

from .. import conf, tokens
from ..models import Notification

register = template.Library()
logger = logging.getLogger("herald_django")


def _user(context):
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return user if user is not None and user.is_authenticated else None


def _requested(channels):
    if channels is None:
        return None
    if isinstance(channels, str):
        channels = channels.replace(",", " ").split()
    return list(channels)


@register.simple_tag(takes_context=True)
def herald_script(context, channels=None, nonce=None):
    """herald.js, connected for the signed-in user, keeping every unread badge live.

    It subscribes to the user's inbox plus `channels` (names, space- or comma-separated),
    by default the exact channels `HERALD_CHANNELS` grants the user. A channel the user's
    tokens would not grant is left out (and logged): herald would refuse the whole stream.
    Tokens come from the token view, fetched when herald.js needs one, so the page itself
    carries none. Pass `nonce` under a Content-Security-Policy that requires one.

    The page hears of everything through DOM events on `document`: `herald:notification`
    (`event.detail` is the notification), `herald:unread_count`, `herald:read`,
    `herald:reset`, `herald:status` and `herald:signed_out`; `window.herald` has
    `markRead(id)` and `markAllRead()`.
    """
    user = _user(context)
    if user is None:
        return ""
    grants = tokens.grants_for(user)
    requested = _requested(channels)
    if requested is None:
        requested = [g for g in grants if not g.endswith("*")]
    extra = []
    for channel in requested:
        if channel in tokens.inbox(user) or channel in extra:
            continue
        if tokens.may_read(user, grants, channel):
            extra.append(channel)
        else:
            logger.warning("herald_script: channel not granted to user=%s channel=%r",
                           user.pk, channel)
    config = {
        "url": conf.herald_url(),
        "token_url": reverse("herald:token"),
        # None: herald's default, the inbox.
        "channels": tokens.inbox(user) + extra if extra else None,
    }
    return render_to_string("herald_django/script.html", {"config": config, "nonce": nonce})


def unread_count(user):
    """The user's unread count (their inbox), by herald's SQL function: O(1) in the inbox."""
    using = router.db_for_read(Notification)
    # A savepoint: if herald has not migrated this database, the error must not abort the
    # request's transaction (ATOMIC_REQUESTS).
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("select herald_unread_count(%s)", [str(user.pk)])
        return cursor.fetchone()[0]


@register.simple_tag(takes_context=True)
def herald_unread_badge(context):
    """`<span class="herald-unread" data-herald-unread>N</span>`, hidden at 0.

    The count is computed here, so it is right before any script runs; `{% herald_script %}`
    keeps it live.
    """
    user = _user(context)
    if user is None:
        return ""
    try:
        count = unread_count(user)
    except DatabaseError:
        # The page still renders; the badge fills in when the stream connects.
        logger.exception("herald_unread_badge: cannot count (has herald migrated this database?)")
        count = None
    return render_to_string("herald_django/badge.html", {"count": count})
