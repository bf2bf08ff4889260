"""`notify()`: insert notifications in the caller's transaction."""

from django.contrib.auth import get_user_model
from django.db import models

from .models import Notification

_COLLECTIONS = (list, tuple, set, frozenset, models.QuerySet)


def channel_of(to):
    """The channel for a recipient: a saved user (their inbox) or a channel name."""
    if isinstance(to, str):
        return to
    if isinstance(to, models.Model):
        if not isinstance(to, get_user_model()):
            # An order is not an inbox: `user:<order.pk>` would reach some unrelated user.
            raise TypeError(
                f"herald_django.notify: a {type(to).__name__} is not a user; pass a channel "
                f"name instead (e.g. '{type(to).__name__.lower()}:{to.pk}')."
            )
        if to.pk is None:
            raise ValueError("herald_django.notify: save the user first (it has no pk yet).")
        return f"user:{to.pk}"
    if getattr(to, "is_anonymous", False):
        raise ValueError("herald_django.notify: an anonymous user has no inbox.")
    raise TypeError(
        "herald_django.notify: `to` is a user, a channel name or a list of them, "
        f"not {type(to).__name__} (for a user id, pass f'user:{{id}}')."
    )


def notify(to, title, body="", kind="notification", level="info", data=None, *, using=None):
    """Inserts a notification for `to`; herald delivers it when the transaction commits.

    `to` is a user (their inbox, `user:<pk>`), a channel name (`"broadcast"`, `"order:17"`),
    or a list or queryset of these: then one INSERT adds a row for each, and a list of
    notifications is returned. Inside `transaction.atomic()` (or with `ATOMIC_REQUESTS`) the
    rows commit with the rest of the transaction, or never exist if it rolls back; outside,
    each call commits at once. Values the table would refuse raise `ValidationError` before
    anything is sent to the database, so a bad notification never aborts the transaction.
    """
    many = isinstance(to, _COLLECTIONS)
    recipients = list(to) if many else [to]
    rows = [
        Notification(
            channel=channel_of(recipient),
            title=title,
            body=body,
            kind=kind,
            level=level,
            data={} if data is None else data,
        )
        for recipient in recipients
    ]
    for row in rows:
        row.full_clean()
    if not many:
        rows[0].save(using=using, force_insert=True)
        return rows[0]
    # One statement: herald is woken once, however many rows.
    return Notification.objects.using(using).bulk_create(rows)
