-- "Committed after snapshot S" is written once per index it is read through:
-- `herald_channel_after` (one channel: the (channel, txid) index) and `herald_all_after` (every
-- channel: the (txid) index). Every reader and counter now goes through them, instead of five
-- hand-written copies. Both are plain SQL, so PostgreSQL inlines them into their callers and
-- plans them there, provided their arguments are plain values or columns: given a subquery
-- as an argument, a function is not inlined, and runs as a function scan that materializes
-- whole rows (measured 4x slower counts), hence the lateral joins below.
--
-- The predicate: rows at or past S's xmax, plus the rows of each of S's in-progress
-- transactions, found one transaction at a time (`offset 0` keeps that a lookup per
-- transaction: pulled up, the planner makes it a hash join over every row), and never past
-- the current snapshot's xmax, which no committed row of a real transaction reaches (rows
-- restored from the future wait for `herald_repair_txids`).
create function herald_all_after(base pg_snapshot)
returns setof notifications
language sql stable as $$
    select n.* from notifications n
    where n.txid >= pg_snapshot_xmax(base)
      and n.txid < pg_snapshot_xmax(pg_current_snapshot())
    union all
    select n.* from pg_snapshot_xip(base) running(txid)
    cross join lateral (select * from notifications n
                        where n.txid = running.txid offset 0) n
$$;

-- The listener's read: every channel's rows after the cursor, at most `lim`, in cursor order.
create or replace function herald_since(base pg_snapshot, upto pg_snapshot, last_id bigint,
                                        lim bigint)
returns setof notifications
language plpgsql stable
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
    return query
    select n.* from herald_all_after(base) n
    where not (pg_visible_in_snapshot(n.txid, upto) and n.id <= last_id)
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;

-- How many rows `ch` has, as the calling statement sees it.
create or replace function herald_channel_count(ch text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
    return coalesce((select sum(c.total) from (
                         select total from notification_counts where channel = ch
                         union all
                         select total from notification_count_deltas where channel = ch) c), 0)
         + (select count(*) from notification_counts_through t,
                                 herald_channel_after(ch, t.through));
end;
$$;

-- As in the parallel_deletes migration; the tail and the rows a mark does not cover are
-- counted through herald_channel_after.
create or replace function herald_unread_count(reader text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
    return (
        with mark as (
            select m.* from (select) as one
            left join notification_read_marks m on m.user_id = reader
        ), inbox (channel, read_through, seen, seen_deleted) as (
            select 'user:' || reader, read_through, inbox_seen, inbox_deleted from mark
            union all
            select 'broadcast', read_through, broadcast_seen, broadcast_deleted from mark
        )
        select sum(
            case when i.read_through is null
                      or (i.seen is not null
                          and (i.seen_deleted = coalesce(c.deleted, 0)
                               or c.deleted_max_txid < pg_snapshot_xmin(i.read_through)))
                 -- The rolled-up total and the tail since, less what the mark saw (none
                 -- without a mark), less what was deleted of that since: rows deleted since
                 -- the mark were all older than it.
                 then coalesce(c.total, 0)
                      - coalesce(i.seen - (coalesce(c.deleted, 0) - i.seen_deleted), 0)
                      + (select count(*) from notification_counts_through t,
                                              herald_channel_after(i.channel, t.through))
                 -- The saved count cannot be trusted: count the rows the mark does not cover.
                 else (select count(*) from herald_channel_after(i.channel, i.read_through))
            end)
        from inbox i
        cross join lateral (
            select sum(x.total) as total, sum(x.deleted) as deleted,
                   max(x.deleted_max_txid) as deleted_max_txid
            from (select total, deleted, deleted_max_txid from notification_counts
                  where channel = i.channel
                  union all
                  select total, deleted, deleted_max_txid from notification_count_deltas
                  where channel = i.channel) x) c
    )
    -- Single reads of rows the mark does not cover. (A read recorded while a "mark all
    -- read" committed can survive it, and an app may insert reads itself.)
    - (select count(*) from notification_reads r
       join notifications n on n.id = r.notification_id
       left join notification_read_marks m on m.user_id = reader
       where r.user_id = reader and n.channel in ('user:' || reader, 'broadcast')
         and not coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false));
end;
$$;

drop function herald_count_after(text, pg_snapshot);

-- As in the parallel_deletes migration; the rows since the last roll-up are read through
-- herald_all_after (whose snapshot bound already leaves out what the current snapshot
-- cannot see).
create or replace function herald_roll_up_counts(patient boolean default false)
returns boolean
language plpgsql
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
    -- Rows this transaction inserted would count as visible in its own snapshot, and so
    -- would the ones it inserts after: they would never be counted.
    if pg_current_xact_id_if_assigned() is not null then
        raise exception 'herald_roll_up_counts() must run in a transaction that has not written';
    end if;
    -- The table lock first, without waiting: a TRUNCATE holds it while it waits for the
    -- counts lock, and waiting here in turn would deadlock.
    begin
        lock table notifications in access share mode nowait;
    exception when lock_not_available then
        return false;
    end;
    if patient then
        perform set_config('lock_timeout', '2s', true);
        begin
            perform pg_advisory_xact_lock(herald_counts_lock());
        exception when lock_not_available then
            return false;
        end;
    elsif not pg_try_advisory_xact_lock(herald_counts_lock()) then
        return false;
    end if;
    perform herald_fold_count_deltas();
    -- One statement, one snapshot: the rows counted are exactly those visible in the
    -- snapshot stored as the new `through`. (Read committed: it is taken after the lock.)
    with fresh as (
        select n.channel, count(*) as added
        from notification_counts_through t, herald_all_after(t.through) n
        group by n.channel
    ), added as (
        insert into notification_counts as c (channel, total)
        select channel, added from fresh
        on conflict (channel) do update set total = c.total + excluded.total
    )
    update notification_counts_through set through = pg_current_snapshot();
    return true;
end;
$$;

-- herald's advisory lock keys, all in one place (pg_advisory_lock takes a bigint; these are
-- herald's own, picked to be unlikely in an app that shares the database):
--   7454512  herald_migrations_lock(): migrations, one instance at a time; Rust takes it
--            by its number (store::migrate), as no function exists before the first one;
--   7454513  herald_counts_lock(): roll-ups (exclusive) against deleters (shared);
--   7454514  herald_arm_lock(): instances switching NOTIFY on and off, one at a time.
create function herald_migrations_lock() returns bigint language sql immutable
    as 'select 7454512::bigint';
create function herald_arm_lock() returns bigint language sql immutable
    as 'select 7454514::bigint';

create or replace function herald_arm(want boolean) returns void
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(herald_arm_lock());
    delete from herald_listeners l
    where l.pid not in (select a.pid from pg_stat_activity a)
       or (l.pid = pg_backend_pid() and want is null);
    if want is not null then
        insert into herald_listeners as l (pid, armed) values (pg_backend_pid(), want)
        on conflict (pid) do update set armed = excluded.armed, since = now();
    end if;
    perform setval('herald_armed', (select count(*) filter (where l.armed) > 0
                                    from herald_listeners l)::int);
end;
$$;
