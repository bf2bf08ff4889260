"""A user's inbox as herald sees it, read on the server: the unread and unseen counts, and
the newest notifications with their read, seen and archived state and the cursor a page's
stream resumes from.

All use herald's SQL functions (`herald_unread_count`, `herald_unseen_count`,
`herald_newest`), in the caller's transaction and connection: no HTTP, about 0.1 ms for a
count however long the inbox.
"""

import json
from dataclasses import dataclass, field

from django.db import connections, router, transaction

from . import tokens
from .models import Notification

# herald's functions count the rows "committed after" a snapshot up to the current
# snapshot's xmax, which is one past the newest *completed* transaction: the counting
# transaction's own rows (notify() and then the badge, in one request or one test) are left
# out while no later transaction has completed, and counted once one has. So a TestCase saw
# 0 or the right count depending on what committed meanwhile (a roll-up, another test's
# herald). This adds them back when the function left them out; a herald whose
# `herald_channel_after` counts them (its source names pg_current_xact_id_if_assigned) needs
# nothing added. Free outside writing transactions: the id is null there. The same rows are
# missing from the unseen count (no seen mark covers a row that is not committed), so the
# same compensation applies to it; rows of ours read (or archived) in this transaction are
# subtracted by both functions already, as they see our notification_reads rows.
_OWN_UNCOUNTED_ROWS = """
    case when pg_current_xact_id_if_assigned() is null then 0 else (
        select count(*) from notifications n
        where n.channel in ('user:' || %(user)s, 'broadcast')
          and n.txid = pg_current_xact_id_if_assigned()
          and n.txid >= pg_snapshot_xmax(pg_current_snapshot())
          and not exists (select from pg_proc p
                          where p.proname = 'herald_channel_after'
                            and p.prosrc like '%%pg_current_xact_id_if_assigned%%'))
    end"""

UNREAD_COUNT_SQL = f"herald_unread_count(%(user)s) + {_OWN_UNCOUNTED_ROWS}"
UNSEEN_COUNT_SQL = f"herald_unseen_count(%(user)s) + {_OWN_UNCOUNTED_ROWS}"


def unread_count(user, using=None):
    """`user`'s unread count (their inbox, `user:<pk>` and `broadcast`), by herald's function.

    Exact inside the caller's transaction, its own uncommitted notifications included (a
    `TestCase`, or a view that notifies and then renders the badge).
    """
    return _count(UNREAD_COUNT_SQL, user, using)


def unseen_count(user, using=None):
    """`user`'s unseen count: the notifications of their inbox that no bell has shown them
    yet (`markSeen`) and that they have not read, by herald's function. What a bell's badge
    shows when opening the bell clears it. Exact inside the caller's transaction, as
    `unread_count` is.
    """
    return _count(UNSEEN_COUNT_SQL, user, using)


def _count(sql, user, using):
    using = using or router.db_for_read(Notification)
    # A savepoint: if herald has not migrated this database, the error must not abort the
    # request's transaction (ATOMIC_REQUESTS).
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(f"select {sql}", {"user": str(user.pk)})
        return cursor.fetchone()[0]


@dataclass
class InboxPage:
    """The newest notifications of a user's inbox, newest first, and where a stream resumes.

    Each notification has `read`, `seen` and `archived` (bools) beside its fields, and the page
    has the inbox's `unread_count` and `unseen_count`. Pass `cursor` to
    `{% herald_script cursor=... %}`: the stream then delivers exactly what commits after this
    page was read, so nothing falls between the list and the live updates. (Rows the reading
    transaction wrote itself are on the page and, once it commits, also on the stream: skip
    ids the page already shows.) It is also what `markSeen(cursor)` takes: "the user has seen
    what this page showed".
    """

    notifications: list = field(default_factory=list)
    unread_count: int = 0
    unseen_count: int = 0
    cursor: str = ""


_FIELDS = ("id", "channel", "title", "body", "kind", "level", "data", "created_at")


def inbox_page(user, limit=20, unread=False, channels=None, archived=False, using=None):
    """The newest `limit` (1-200) notifications of `user`'s inbox, or of `channels` (each one
    the user's tokens grant), with their read, seen and archived state, the unread and unseen
    counts and the cursor, read in one statement: herald's own `GET /api/notifications`,
    without HTTP. Archived notifications are left out; `archived=True` lists only them.
    `unread=True` lists only unread ones."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 200:
        raise ValueError("herald_django.inbox_page: limit is 1-200.")
    inbox = tokens.inbox(user)
    if channels is None:
        channels = inbox
    else:
        if isinstance(channels, str):
            channels = channels.replace(",", " ").split()
        grants = tokens.grants_for(user)
        refused = [c for c in channels if not tokens.may_read(user, grants, c)]
        if refused:
            raise ValueError(f"herald_django.inbox_page: {refused} not granted to the user.")
    using = using or router.db_for_read(Notification)
    columns = ", ".join(f"p.{name}" for name in _FIELDS)
    sql = f"""
        select s.snapshot, s.unread_count, s.unseen_count, {columns}, p.read, p.seen, p.archived
        from (select pg_current_snapshot()::text as snapshot,
                     {UNREAD_COUNT_SQL} as unread_count,
                     {UNSEEN_COUNT_SQL} as unseen_count offset 0) s
        left join lateral herald_newest(%(user)s, %(channels)s::text[], %(limit)s, %(unread)s,
                                        %(archived)s) with ordinality p on true
        order by p.ordinality"""
    params = {"user": str(user.pk), "channels": list(channels), "limit": limit,
              "unread": bool(unread), "archived": bool(archived)}
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    page = InboxPage(unread_count=rows[0][1], unseen_count=rows[0][2], cursor=rows[0][0])
    for row in rows:
        if row[3] is None:
            continue  # the empty page's one row
        values = list(row[3:3 + len(_FIELDS)])
        if isinstance(values[6], str):  # jsonb, as Django's connection hands it over
            values[6] = json.loads(values[6])
        notification = Notification.from_db(using, _FIELDS, values)
        notification.read, notification.seen, notification.archived = row[-3:]
        page.notifications.append(notification)
    return page
