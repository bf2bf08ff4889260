"""Validation that mirrors the `notifications` table, so bad values are a ValidationError.

Each rule is the table's (migrations in herald's repository): PostgreSQL would refuse the
same values with an IntegrityError or a DataError, which in a view is a 500 and, inside a
transaction, aborts everything the request did so far.
"""

import math
import re

from django.core.exceptions import ValidationError

# `notifications_channel_valid`, range for range (herald's migration 000006 spells them out
# so that no locale changes them): 1-200 characters, none of them Unicode White_Space or a
# control character, ',' (it separates channel lists) or '*' (it ends grant patterns).
_CHANNEL_FORBIDDEN = "\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000,*"
_CHANNEL = re.compile(f"[^{_CHANNEL_FORBIDDEN}]{{1,200}}")

# `notifications_kind_valid` is `^[^[:cntrl:]]{1,100}$`, whose meaning follows the
# database's locale: every locale counts the C0 and C1 controls, some (ICU's, glibc's full
# locales) also U+2028 and U+2029. Refusing all of them is never looser than the table.
_KIND = re.compile("[^\x00-\x1f\x7f-\x9f\u2028\u2029]{1,100}")

LEVELS = ("info", "success", "warning", "error")

# Text PostgreSQL cannot store at all (an encoding error, not a constraint): NUL, and lone
# surrogates, which Python strings can hold but UTF-8 cannot encode.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def validate_text(value):
    """Refuses text PostgreSQL cannot store: NUL, or a lone surrogate."""
    if isinstance(value, str) and _UNSTORABLE.search(value):
        raise ValidationError(
            "Text may not contain the NUL character or a lone surrogate.", code="unstorable"
        )


def validate_channel(value):
    """A channel name as the table takes it: `user:42`, `broadcast`, `order:17`."""
    validate_text(value)
    if not isinstance(value, str) or not _CHANNEL.fullmatch(value):
        raise ValidationError(
            "A channel name is 1-200 characters, without spaces, control characters, "
            "',' or '*' (for example user:42, broadcast or order:17).",
            code="invalid_channel",
        )


def validate_grant(value):
    """A channel grant for a token: a channel name, or a prefix ending in `*` (`project:*`)."""
    name = value[:-1] + "x" if isinstance(value, str) and value.endswith("*") else value
    try:
        validate_channel(name)
    except ValidationError:
        raise ValidationError(
            "A grant is a channel name, or a prefix followed by one '*' (project:*).",
            code="invalid_grant",
        ) from None


def validate_kind(value):
    """A kind as the table takes it: 1-100 characters, no control characters."""
    validate_text(value)
    if not isinstance(value, str) or not _KIND.fullmatch(value):
        raise ValidationError(
            "A kind is 1-100 characters without control characters.", code="invalid_kind"
        )


def validate_data(value):
    """A JSON object (`notifications_data_is_object`) that jsonb can store."""
    if not isinstance(value, dict):
        raise ValidationError("data must be a JSON object, e.g. {\"url\": \"/orders/17\"}.",
                              code="not_an_object")
    check_json(value)


def check_json(value, what="data"):
    """Refuses what jsonb cannot store: \\u0000 and lone surrogates in strings and keys, and
    NaN and Infinity, which are not JSON at all (Python's json module writes them anyway)."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValidationError(
                f"{what} may not contain the NUL character or a lone surrogate.",
                code="unstorable")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(f"{what} may not contain NaN or Infinity.", code="not_json")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json(key, what)
            check_json(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_json(item, what)
