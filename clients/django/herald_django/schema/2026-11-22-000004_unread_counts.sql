-- Unread counts in O(1), without adding work to writers' INSERTs.
--
-- `notification_counts` holds, per channel, how many rows were visible in one snapshot,
-- `notification_counts_through.through`. herald rolls it forward every second
-- (`herald_roll_up_counts`); a channel's count now is that total plus its rows committed since
-- (its "tail", a few index entries). A "mark all read" saves each inbox channel's count as seen
-- at its snapshot, so a user's unread count is "count now - count seen" per inbox channel, less
-- their single reads since. Deletions (pruning, an app's DELETE) are counted by a trigger; a
-- saved count is trusted only while its channel has had no deletion since, else the unread
-- rows are counted instead (O(unread), never O(inbox)). The functions keep generic plans (see
-- the page_functions migration for why).
create table notification_counts (
    channel text primary key,
    -- Rows of the channel visible in `notification_counts_through.through` that still exist.
    total bigint not null default 0,
    -- Rows ever deleted from the channel, and the newest of their transactions. A mark's
    -- saved count stays usable after deletions if every deleted row was older than the mark
    -- (it was counted in the saved count): see herald_unread_count.
    deleted bigint not null default 0,
    deleted_max_txid xid8
);

create table notification_counts_through (
    only_row boolean primary key default true check (only_row),
    through pg_snapshot not null
);
-- An empty snapshot: nothing counted yet, the first roll-up counts every row.
insert into notification_counts_through (through) values ('1:1:');

alter table notification_read_marks
    add column inbox_seen bigint,
    add column inbox_deleted bigint,
    add column broadcast_seen bigint,
    add column broadcast_deleted bigint;

-- Rolling up and counting deletions both change `total`; this lock orders them, so a row is
-- never both rolled up by one and left uncounted by the other.
create function herald_counts_lock() returns bigint language sql immutable
    as 'select 7454513::bigint';

-- How many rows of `ch` are not visible in `snap`: those at or past its xmax, and those of its
-- in-progress transactions, each found through the (channel, txid) index. (The planner scans
-- the whole channel for `txid = any(<xip array>)`, and for an OR of the two.)
create function herald_count_after(ch text, snap pg_snapshot) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
declare
    counted bigint;
    running xid8;
begin
    select count(*) into counted from notifications n
    where n.channel = ch and n.txid >= pg_snapshot_xmax(snap);
    for running in select pg_snapshot_xip(snap) loop
        counted := counted + (select count(*) from notifications n
                              where n.channel = ch and n.txid = running);
    end loop;
    return counted;
end;
$$;

-- How many rows `ch` has, as the calling statement sees it.
create function herald_channel_count(ch text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
begin
    return coalesce((select c.total from notification_counts c where c.channel = ch), 0)
         + herald_count_after(ch, (select t.through from notification_counts_through t));
end;
$$;

-- `reader`'s unread count (SPEC: their inbox, `user:<id>` and `broadcast`), as the calling
-- statement sees it. Apps may call it too: `select herald_unread_count('42')`.
-- One statement (each one PL/pgSQL runs has a fixed cost that several would multiply): per
-- inbox channel, the rolled-up total plus the tail, less the count the mark saved; or, when
-- the saved count cannot be trusted, the rows the mark does not cover.
create function herald_unread_count(reader text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
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
                 -- Less what the mark saw (none without a mark), less what was deleted of
                 -- that since: rows deleted since the mark were all older than it.
                 then coalesce(c.total, 0)
                      - coalesce(i.seen - (coalesce(c.deleted, 0) - i.seen_deleted), 0)
                      + (select count(*) from notifications n
                         where n.channel = i.channel
                           and n.txid >= (select pg_snapshot_xmax(t.through)
                                          from notification_counts_through t))
                      + (select count(*) from notification_counts_through t
                         cross join pg_snapshot_xip(t.through) as running(txid)
                         cross join lateral (select from notifications n
                                             where n.channel = i.channel
                                               and n.txid = running.txid offset 0) as found)
                 else herald_count_after(i.channel, i.read_through)
            end)
        from inbox i
        left join notification_counts c on c.channel = i.channel
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

-- Adds the rows committed since the last roll-up to `notification_counts`. Returns false
-- without waiting if another session is rolling up or deleting.
create function herald_roll_up_counts() returns boolean
language plpgsql
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
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
    if not pg_try_advisory_xact_lock(herald_counts_lock()) then
        return false;
    end if;
    -- One statement, one snapshot: the rows counted are exactly those visible in the
    -- snapshot stored as the new `through`. (Read committed: it is taken after the lock.)
    -- Rows whose txid is past it (restored from another cluster, or written by hand) stay
    -- in the tail: counted there, never rolled up twice.
    with t as (
        select through from notification_counts_through
    ), fresh as (
        select channel, count(*) as added
        from (select n.channel from notifications n
              where n.txid >= (select pg_snapshot_xmax(through) from t)
                and pg_visible_in_snapshot(n.txid, pg_current_snapshot())
              union all
              select n.channel from t
              cross join pg_snapshot_xip(t.through) running(txid)
              cross join lateral (select n.channel from notifications n
                                  where n.txid = running.txid offset 0) n) new_rows
        group by channel
    ), added as (
        insert into notification_counts as c (channel, total)
        select channel, added from fresh
        on conflict (channel) do update set total = c.total + excluded.total
    )
    update notification_counts_through set through = pg_current_snapshot();
    return true;
end;
$$;

-- A DELETE takes the counts lock before its first row lock (a lock taken after them, at the
-- end of the statement, deadlocks two transactions that each delete twice). It is held to
-- commit, so deletions of notifications run one transaction at a time, and a roll-up skips
-- its turn meanwhile.
create function herald_lock_counts() returns trigger
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(herald_counts_lock());
    return null;
end;
$$;

create trigger notifications_lock_counts
    before delete on notifications
    for each statement execute function herald_lock_counts();

create function herald_count_deleted() returns trigger
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(herald_counts_lock());
    insert into notification_counts as c (channel, total, deleted, deleted_max_txid)
    select d.channel,
           -count(*) filter (where pg_visible_in_snapshot(d.txid, t.through)),
           count(*),
           max(d.txid)
    from deleted_rows d cross join notification_counts_through t
    group by d.channel
    on conflict (channel) do update
        set total = c.total + excluded.total, deleted = c.deleted + excluded.deleted,
            deleted_max_txid = greatest(c.deleted_max_txid, excluded.deleted_max_txid);
    return null;
end;
$$;

create trigger notifications_count_deleted
    after delete on notifications
    referencing old table as deleted_rows
    for each statement execute function herald_count_deleted();

create function herald_count_truncated() returns trigger
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(herald_counts_lock());
    -- Every channel with rows gets a counts row, so that the change to `deleted` reaches the
    -- marks that saved a count of it.
    insert into notification_counts (channel)
    select distinct channel from notifications
    on conflict (channel) do nothing;
    -- This transaction's id is newer than any mark's xmin that could have counted rows.
    update notification_counts
    set total = 0, deleted = deleted + 1,
        deleted_max_txid = greatest(deleted_max_txid, pg_current_xact_id());
    return null;
end;
$$;

create trigger notifications_count_truncated
    before truncate on notifications
    for each statement execute function herald_count_truncated();
