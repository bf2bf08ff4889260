"""`{% load herald %}`: `{% herald_script %}` and `{% herald_unread_badge %}` (which counts
unread notifications, or unseen ones with `count="unseen"`).

Both render nothing for anonymous users. They find the user through `request` (the
`request` context processor, in every new project's settings) or `user` (the `auth` one).
"""

import logging

from django import template
from django.db import DatabaseError
from django.template.loader import render_to_string
from django.urls import reverse

from .. import conf, inbox, tokens

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
def herald_script(context, channels=None, presence=None, cursor=None, nonce=None):
    """herald.js, connected for the signed-in user, keeping every unread badge live.

    It subscribes to the user's inbox plus `channels` (names, space- or comma-separated),
    by default the exact channels `HERALD_CHANNELS` grants the user, and makes the user
    present on `presence` channels (same form). A channel the user's tokens would not grant
    is left out (and logged): herald would refuse the whole stream. `cursor` (an
    `inbox_page(...).cursor`) resumes the stream right after a list the page rendered, so
    nothing falls between them. Tokens come from the token view, fetched when herald.js needs
    one, so the page itself carries none. Pass `nonce` under a Content-Security-Policy that
    requires one.

    The page hears of everything through DOM events on `document`: `herald:notification`
    (`event.detail` is the notification), `herald:unread_count` (the count),
    `herald:counts` (`{unread, unseen}`), `herald:read`, `herald:seen` (`{through}`),
    `herald:archived`, `herald:unarchived`, `herald:unread` (`{ids}`, or for read and
    archived `{all: true}`), `herald:reset`, `herald:presence` (`{channel, users}`),
    `herald:signal` (`kept: true` on a channel's kept values, when the stream opens),
    `herald:channels_refused` (`{channels}`), `herald:status`, `herald:error` and
    `herald:signed_out`; `window.herald` is herald.js's handle (`markRead(id)`,
    `markAllRead()`, `markSeen(cursor)`, `markUnread(id)`, `archive(id)`, `unarchive(id)`,
    `archiveAll()`, `present(channel)`, `signal(channel, kind, data)`, ...).
    """
    user = _user(context)
    if user is None:
        return ""
    grants = tokens.grants_for(user)
    requested = _requested(channels)
    if requested is None:
        requested = [g for g in grants if not g.endswith("*")]
    extra = _granted(user, grants, requested, "channel", skip=tokens.inbox(user))
    present = _granted(user, grants, _requested(presence) or [], "presence channel")
    config = {
        "url": conf.herald_url(),
        "token_url": reverse("herald:token"),
        # None: herald's default, the inbox.
        "channels": tokens.inbox(user) + extra if extra else None,
    }
    if present:
        config["presence"] = present
    if cursor:
        config["cursor"] = str(cursor)
    if conf.script_source() == "app":
        script = reverse("herald:script")
    else:
        script = f"{config['url']}/herald.js"
    return render_to_string("herald_django/script.html",
                            {"config": config, "script": script, "nonce": nonce})


def _granted(user, grants, requested, what, skip=()):
    """`requested` without repeats, `skip`, and what the user's tokens do not grant (logged)."""
    kept = []
    for channel in requested:
        if channel in skip or channel in kept:
            continue
        if tokens.may_read(user, grants, channel):
            kept.append(channel)
        else:
            logger.warning("herald_script: %s not granted to user=%s channel=%r",
                           what, user.pk, channel)
    return kept


def unread_count(user):
    """The user's unread count (their inbox): `herald_django.unread_count`."""
    return inbox.unread_count(user)


def unseen_count(user):
    """The user's unseen count (their inbox): `herald_django.unseen_count`."""
    return inbox.unseen_count(user)


# What a badge can count: its function, and the name in its class and data attribute.
_BADGE_COUNTS = {"unread": unread_count, "unseen": unseen_count}


@register.simple_tag(takes_context=True)
def herald_unread_badge(context, count="unread"):
    """`<span class="herald-unread" data-herald-unread>N</span>`, hidden at 0: the user's
    unread count. With `count="unseen"`, `<span class="herald-unseen" data-herald-unseen>N
    </span>`: the notifications no bell has shown them yet (`markSeen` clears it).

    The count is computed here, so it is right before any script runs; `{% herald_script %}`
    keeps it live.
    """
    counter = _BADGE_COUNTS.get(count)
    if counter is None:
        raise template.TemplateSyntaxError(
            f'herald_unread_badge: count is "unread" or "unseen", not {count!r}.')
    user = _user(context)
    if user is None:
        return ""
    try:
        value = counter(user)
    except DatabaseError:
        # The page still renders; the badge fills in when the stream connects.
        logger.exception("herald_unread_badge: cannot count (has herald migrated this database?)")
        value = None
    return render_to_string("herald_django/badge.html", {"count": value, "kind": count})
