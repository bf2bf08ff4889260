"""`notify()`: insert notifications in the caller's transaction. `send_signal()`: a live
signal to a channel's open streams, in the caller's transaction too."""

import json
import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, models, router, transaction

from . import validators
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


class HeraldError(Exception):
    """herald could not take what the package asked of it.

    `send_signal()` raises it when the database has no `herald_signal` (`code`
    `"not_installed"`: a herald older than kept signals migrated it) or the connection's role
    may not call it (`"permission_denied"`: grant it `EXECUTE`). `status` and `retry_after`
    (an HTTP status, and the seconds a 429 asked to wait) are None: since `send_signal()` goes
    through SQL, nothing in the package makes HTTP requests to herald.
    """

    def __init__(self, message, status=None, code=None, retry_after=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


# herald's limits for signals (SPEC section 8) and for kept values (section 12), as the SQL
# function `herald_signal` checks them.
MAX_SIGNAL_BYTES = 4096
MAX_SIGNAL_KIND_CHARS = 64
MAX_KEEP_SECS = 86400
# The event herald_signal delivers, with the longest `at` it writes (microseconds, UTC): the
# 4,096 bytes are counted on it.
_EVENT = '{{"channel":{channel},"kind":{kind},"from":null,"data":{data},"at":"2026-01-01T00:00:00.000000Z"}}'
# SQLSTATEs herald_signal's caller can meet: its refusals, and a database without it (or a
# role that may not call it).
_INVALID_PARAMETER_VALUE = "22023"
_UNDEFINED_FUNCTION = "42883"
_INSUFFICIENT_PRIVILEGE = "42501"


def send_signal(channel, kind, data, keep=None, *, using=None):
    """Sends a live signal (a typing indicator, a courier's position) to the pages open on
    `channel` (`herald:signal` on `document`), when the caller's transaction commits.

    It calls herald's SQL function `herald_signal` on the caller's database connection, in
    the caller's transaction: inside `transaction.atomic()` (or with `ATOMIC_REQUESTS`) the
    signal is delivered when the transaction commits, and never if it rolls back; outside,
    at once. Every herald instance delivers it to its streams on the channel. No HTTP.

    `channel` is a channel name or a user (their inbox). `kind` is 1-64 characters; `data`
    any JSON value; the event pages receive at most 4,096 bytes. Pages see `from: null` (no
    user sent it: put who it is about in `data`). A signal is not stored, unless `keep`
    (seconds, 1-86,400) asks herald to keep it as the channel's current value of that kind
    until then (or until a newer kept one replaces it): a page that opens later gets it first,
    with `kept: true`.

    Raises `ValidationError` for values herald would refuse, before the call (and, should
    herald's function refuse something all the same, without aborting the transaction), and
    `HeraldError` when the database has no `herald_signal` or the role may not call it.
    Returns None: who hears it is known only at commit.
    """
    channel = channel_of(channel)
    validators.validate_channel(channel)
    if (not isinstance(kind, str) or not 1 <= len(kind) <= MAX_SIGNAL_KIND_CHARS
            or any(unicodedata.category(c) == "Cc" for c in kind)):
        raise ValidationError("A signal's kind is 1-64 characters without control characters.",
                              code="invalid_kind")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int)
                             or not 1 <= keep <= MAX_KEEP_SECS):
        raise ValueError(f"herald_django.send_signal: keep is whole seconds, 1-{MAX_KEEP_SECS}.")
    validators.check_json(data, what="A signal's data")
    try:
        # As jsonb prints it (herald_signal writes the jsonb's text into the event).
        text = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError) as err:
        raise ValidationError(f"A signal's data must be JSON: {err}", code="not_json") from None
    size = len(_EVENT.format(channel=json.dumps(channel, ensure_ascii=False),
                             kind=json.dumps(kind, ensure_ascii=False), data=text).encode())
    if size > MAX_SIGNAL_BYTES:
        raise ValidationError(
            f"A signal is at most {MAX_SIGNAL_BYTES} bytes of JSON; this one is {size}.",
            code="too_large")
    using = using or router.db_for_write(Notification)
    try:
        # A savepoint: a refusal must not abort the caller's transaction.
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute("select herald_signal(%s, %s, %s::jsonb, %s)",
                           [channel, kind, text, keep])
    except DatabaseError as err:
        refusal = _refused(err)
        if refusal is None:
            raise
        raise refusal from None


def _refused(err):
    """What herald_signal's error means for the caller (None: nothing it knows)."""
    cause = err.__cause__
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    diag = getattr(cause, "diag", None)
    message = getattr(diag, "message_primary", None) or str(err).strip()
    if state == _INVALID_PARAMETER_VALUE:
        return ValidationError(message, code="refused")
    if state == _UNDEFINED_FUNCTION:
        return HeraldError(
            "herald_django.send_signal: this database has no herald_signal(): migrate it with "
            "a herald that has kept signals (herald migrate, or herald serve)",
            code="not_installed")
    if state == _INSUFFICIENT_PRIVILEGE:
        return HeraldError(
            f"herald_django.send_signal: {message}; grant it to this connection's role: "
            "grant execute on function herald_signal(text, text, jsonb, integer) to <role>",
            code="permission_denied")
    return None
