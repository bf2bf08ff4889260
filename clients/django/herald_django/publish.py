"""`notify()`: insert notifications in the caller's transaction. `send_signal()`: a live
signal to a channel's open streams."""

import json
import time
import unicodedata
import urllib.error
import urllib.request

import jwt
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models

from . import conf, validators
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
    """herald refused a request, or could not be reached (then `status` is None).

    `status` is the HTTP status, `code` herald's error code (`"forbidden"`, `"rate_limited"`,
    ...; `"unreachable"` when nothing answered in time), `retry_after` the seconds herald asked
    to wait (429), else None.
    """

    def __init__(self, message, status=None, code=None, retry_after=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


# herald's limits for POST /api/signals (SPEC section 8) and for kept values (section 12).
MAX_SIGNAL_BYTES = 4096
MAX_SIGNAL_KIND_CHARS = 64
MAX_KEEP_SECS = 86400
# Who signals come `from` when the server sends them, unless `sender` says otherwise.
SERVER_SENDER = "server"
# Seconds to wait for herald: a signal is live or worthless, and a view must not hang on it.
SIGNAL_TIMEOUT = 3.0
# The lifetime of the token each call mints: it only has to reach herald.
SIGNAL_TOKEN_SECS = 60


def send_signal(channel, kind, data, keep=None, *, sender=None, timeout=SIGNAL_TIMEOUT):
    """Sends a live signal (a typing indicator, a courier's position) to `channel`'s open
    streams, and returns how many streams the herald that took it delivered it to.

    A signal is not stored: only pages open now hear it (`herald:signal` on `document`).
    `channel` may also be a user (their inbox). `kind` is 1-64 characters; `data` any JSON value; the whole
    request at most 4,096 bytes. `keep` (seconds, 1-86,400) asks herald to keep it as the
    channel's current value of that kind, for pages that open later (a herald with kept
    values, SPEC section 12; an older one refuses the request). `sender` (a user or a user
    id; default `"server"`) is whom pages see it `from`. herald allows each sender 20 signals
    a second (burst 40) per instance: a courier app sending for many couriers passes each
    courier as `sender`.

    Today this is an HTTP request to herald (`HERALD_INTERNAL_URL`, else `HERALD_URL`) with a
    token the package mints for the sender (`publish` scope, a grant of the channel), sent at
    once, whatever the caller's transaction does: wrap it in `transaction.on_commit(...)` when
    it must follow a commit. Once herald has its SQL function `herald_signal`, this becomes a
    call to it, in the caller's transaction (delivered at commit, never on rollback).

    Raises `ValidationError` for values herald would refuse (before any request), and
    `HeraldError` when herald refuses it or does not answer within `timeout` seconds.
    """
    channel = channel_of(channel)
    validators.validate_channel(channel)
    if (not isinstance(kind, str) or not 1 <= len(kind) <= MAX_SIGNAL_KIND_CHARS
            or any(unicodedata.category(c) == "Cc" for c in kind)):
        raise ValidationError("A signal's kind is 1-64 characters without control characters.",
                              code="invalid_kind")
    body = {"channel": channel, "kind": kind, "data": data}
    if keep is not None:
        if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= MAX_KEEP_SECS:
            raise ValueError(f"herald_django.send_signal: keep is whole seconds, 1-{MAX_KEEP_SECS}.")
        body["keep"] = keep
    try:
        payload = json.dumps(body, allow_nan=False, ensure_ascii=False).encode()
    except (TypeError, ValueError) as err:
        raise ValidationError(f"A signal's data must be JSON: {err}", code="not_json") from None
    if len(payload) > MAX_SIGNAL_BYTES:
        raise ValidationError(
            f"A signal is at most {MAX_SIGNAL_BYTES} bytes of JSON; this one is {len(payload)}.",
            code="too_large")
    url = f"{conf.internal_url()}/api/signals"
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Authorization": f"Bearer {_sender_token(sender, channel)}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    })
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise _refused(err, keep) from None
    except (OSError, ValueError) as err:  # URLError, timeouts, refused connections, bad JSON
        if isinstance(err, TimeoutError) or isinstance(getattr(err, "reason", None), TimeoutError):
            problem = f"did not answer within {timeout} s"
        else:
            problem = f"could not be reached ({getattr(err, 'reason', None) or err})"
        raise HeraldError(f"herald at {url} {problem}", code="unreachable") from None
    return answer.get("delivered_to")


def _sender_token(sender, channel):
    """An app token (no audience) for the sender: `publish` (needed for `broadcast` and other
    users' inboxes) and a grant of exactly this channel (needed for any other)."""
    if sender is None:
        sender = SERVER_SENDER
    elif not isinstance(sender, str):
        sender = channel_of(sender).removeprefix("user:")
    validators.validate_channel(f"user:{sender}")
    now = int(time.time())
    claims = {"sub": sender, "scope": "publish", "iat": now, "exp": now + SIGNAL_TOKEN_SECS}
    if channel != "broadcast" and not channel.startswith("user:"):
        claims["channels"] = [channel]
    return jwt.encode(claims, conf.jwt_secret(), algorithm="HS256")


def _refused(err, keep):
    try:
        error = json.loads(err.read() or b"{}").get("error") or {}
    except ValueError:
        error = {}
    code, message = error.get("code"), error.get("message") or err.reason
    if keep is not None and err.code in (400, 422) and "keep" in str(message):
        message = (f"{message} (this herald does not keep signals yet: send without `keep`, "
                   "or upgrade herald)")
    retry_after = err.headers.get("Retry-After")
    return HeraldError(
        f"herald refused the signal: {err.code} {code}: {message}", status=err.code, code=code,
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None)
