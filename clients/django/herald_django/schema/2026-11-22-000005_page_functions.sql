-- herald's reads as PL/pgSQL functions: PL/pgSQL keeps each statement's plan for the session,
-- where a query sent as text is planned anew on every request (planning the lateral page
-- query cost more than running it). Each function runs in its caller's snapshot (stable).
--
-- Every function here runs its statements with generic plans (`plan_cache_mode`): made once
-- per connection and kept. Left to choose, PostgreSQL estimates `txid >= <param>` as a third
-- of the table, finds the generic plan dear, and plans anew on every call (measured: 1.5 ms
-- per herald_after call instead of 54 us on a 600,000-row table); the plans it keeps are the
-- index lookups below.
--
-- "Committed after snapshot S" is read as two index lookups, never as one OR: rows at or past
-- S's xmax, plus the rows of each of S's in-progress transactions, found one transaction at a
-- time. The planner otherwise scans every row of the channel and filters (it cannot see how
-- few a `txid = any(<array>)` matches). The lookups by txid alone (the listener's) also turn
-- sequential scans off: a bulk insert of many rows in one transaction skews the txid
-- statistics, and the planner would then scan the whole table for each lookup. (The
-- read-state expression is written out in each query: as a SQL function with a subquery it
-- would not be inlined, and calling it per row cost more than the rest of the query.)

-- Rows of channel `ch` committed after snapshot `base`, in no particular order.
create function herald_channel_after(ch text, base pg_snapshot)
returns setof notifications
language sql stable as $$
    select n.* from notifications n
    where n.channel = ch and n.txid >= pg_snapshot_xmax(base)
    union all
    select n.* from pg_snapshot_xip(base) running(txid)
    -- `offset 0` keeps this a lookup per transaction: pulled up into a join, it is planned
    -- as a hash join over the whole channel.
    cross join lateral (select * from notifications n
                        where n.channel = ch and n.txid = running.txid offset 0) n
$$;

-- `reader`'s newest `lim` rows on channels `chans` (only unread ones if `unread_only`), newest
-- first, with their read state. One index scan per channel, merged: `channel = any(...) order
-- by id desc` cannot use the (channel, id) index for the ordering and would sort the inbox.
create function herald_newest(reader text, chans text[], lim bigint, unread_only boolean)
returns table (id bigint, channel text, title text, body text, kind text, level text,
               data jsonb, created_at timestamptz, txid xid8, read boolean)
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
    read_through pg_snapshot :=
        (select m.read_through from notification_read_marks m where m.user_id = reader);
begin
    return query
    select n.*, coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                or exists (select from notification_reads r
                           where r.user_id = reader and r.notification_id = n.id)
    from unnest(chans) as c(channel)
    cross join lateral (
        select * from notifications n
        where n.channel = c.channel
          and (not unread_only
               or not (coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                       or exists (select from notification_reads r
                                  where r.user_id = reader and r.notification_id = n.id)))
        order by n.id desc
        limit lim
    ) n
    order by n.id desc
    limit lim;
end;
$$;

-- `reader`'s rows on `chans` after the cursor (`base`, `upto`, `last_id`; see src/cursor.rs),
-- at most `lim`, in the order cursors require: those visible in `upto` first, then the rest,
-- each by id.
create function herald_after(
    reader text, chans text[], lim bigint, unread_only boolean,
    base pg_snapshot, upto pg_snapshot, last_id bigint
)
returns table (id bigint, channel text, title text, body text, kind text, level text,
               data jsonb, created_at timestamptz, txid xid8, read boolean)
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
    read_through pg_snapshot :=
        (select m.read_through from notification_read_marks m where m.user_id = reader);
begin
    return query
    select n.*, coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                or exists (select from notification_reads r
                           where r.user_id = reader and r.notification_id = n.id)
    from unnest(chans) as c(channel)
    cross join lateral (
        select * from herald_channel_after(c.channel, base) n
        where not (pg_visible_in_snapshot(n.txid, upto) and n.id <= last_id)
          and (not unread_only
               or not (coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                       or exists (select from notification_reads r
                                  where r.user_id = reader and r.notification_id = n.id)))
        order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
        limit lim
    ) n
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;

-- Every channel's rows after the cursor, at most `lim`, in cursor order: the listener's read.
create function herald_since(base pg_snapshot, upto pg_snapshot, last_id bigint, lim bigint)
returns setof notifications
language plpgsql stable
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
as $$
begin
    return query
    select n.* from (
        select * from notifications n where n.txid >= pg_snapshot_xmax(base)
        union all
        select n.* from pg_snapshot_xip(base) running(txid)
        cross join lateral (select * from notifications n
                            where n.txid = running.txid offset 0) n
    ) n
    where not (pg_visible_in_snapshot(n.txid, upto) and n.id <= last_id)
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;
