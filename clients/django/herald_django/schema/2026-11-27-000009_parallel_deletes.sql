-- Deletions of notifications no longer run one transaction at a time (measured before:
-- 4 concurrent single-row deleters made 3,075 deletes/s against 8,355 on the same table
-- without triggers; bench/deletes.sh). They took the counts lock exclusively until commit;
-- now they take it shared, in the one statement trigger that counts them (the `before
-- delete` trigger that only took the lock is gone), so deleters never wait for one another.
-- Only the roll-up takes it exclusively, without waiting (it skips its turn while any
-- deleter is at work), so `through` cannot move under a deleter, which keeps its count exact.
--
-- What a deleter subtracts goes to `notification_count_deltas`, which is only ever appended
-- to: upserting `notification_counts` locked its rows until commit, and two deleters locking
-- two channels' rows in opposite orders would deadlock. Each roll-up folds the deltas into
-- `notification_counts`; readers add what is not folded yet (`notification_counts_now`).
create table notification_count_deltas (
    channel text not null,
    total bigint not null,
    deleted bigint not null,
    deleted_max_txid xid8
);
create index notification_count_deltas_channel_idx on notification_count_deltas (channel);

-- Each channel's counts as of now: the rolled-up row plus the deltas not yet folded into it.
-- (For reading by channel name; the functions below spell the union out per channel, because
-- joined to a list of channels the planner aggregates this view over every channel.)
create view notification_counts_now as
select channel, sum(total)::bigint as total, sum(deleted)::bigint as deleted,
       max(deleted_max_txid) as deleted_max_txid
from (select channel, total, deleted, deleted_max_txid from notification_counts
      union all
      select channel, total, deleted, deleted_max_txid from notification_count_deltas) c
group by channel;

-- Folds the deltas into `notification_counts`. Callers hold the counts lock exclusively, so
-- every delta there is committed and no deleter is adding one.
create function herald_fold_count_deltas() returns void
language sql as $$
    with folded as (delete from notification_count_deltas returning *)
    insert into notification_counts as c (channel, total, deleted, deleted_max_txid)
    select channel, sum(total), sum(deleted), max(deleted_max_txid)
    from folded group by channel
    on conflict (channel) do update
        set total = c.total + excluded.total, deleted = c.deleted + excluded.deleted,
            deleted_max_txid = greatest(c.deleted_max_txid, excluded.deleted_max_txid)
$$;

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
         + herald_count_after(ch, (select t.through from notification_counts_through t));
end;
$$;

-- As in the unread_counts migration, with the deltas added to each channel's counts.
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

-- As in the unread_counts migration, and it folds the deltas first. A `patient` roll-up waits
-- (up to 2 s) for the deleters at work instead of skipping its turn: PostgreSQL queues new
-- deleters behind a waiting roll-up, so under a steady stream of deletions, where an
-- impatient one would find one at work every time, it still gets its turn.
drop function herald_roll_up_counts();
create function herald_roll_up_counts(patient boolean default false) returns boolean
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

-- The deletion triggers write herald's own tables, so they run with their owner's rights: a
-- writer needs only DELETE on notifications. A function that runs as its owner resolves names
-- in the schema herald lives in, never through the caller's search_path (where a look-alike
-- table could stand first).
do $do$
declare
    path text := format('pg_catalog, %I', current_schema());
begin
    execute format($fn$
        create or replace function herald_count_deleted() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- Shared: deleters do not wait for one another. Taken before `through` is read
            -- and held to commit, so no roll-up moves `through` under this count. (It used
            -- to be taken before the first row lock, by a trigger of its own, because an
            -- exclusive lock taken after row locks could deadlock; a shared one cannot: the
            -- roll-up never waits for it, and a TRUNCATE excludes deleters by its table lock.)
            perform pg_advisory_xact_lock_shared(herald_counts_lock());
            insert into notification_count_deltas (channel, total, deleted, deleted_max_txid)
            select d.channel,
                   -count(*) filter (where pg_visible_in_snapshot(d.txid, t.through)),
                   count(*),
                   max(d.txid)
            from deleted_rows d cross join notification_counts_through t
            group by d.channel;
            return null;
        end;
        $body$ $fn$, path);
    execute format($fn$
        create or replace function herald_count_truncated() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- Exclusive: a TRUNCATE already excludes deleters (its table lock); this waits
            -- for a roll-up at work.
            perform pg_advisory_xact_lock(herald_counts_lock());
            perform herald_fold_count_deltas();
            -- Every channel with rows gets a counts row, so that the change to `deleted`
            -- reaches the marks that saved a count of it.
            insert into notification_counts (channel)
            select distinct channel from notifications
            on conflict (channel) do nothing;
            -- This transaction's id is newer than any mark's xmin that could have counted
            -- rows.
            update notification_counts
            set total = 0, deleted = deleted + 1,
                deleted_max_txid = greatest(deleted_max_txid, pg_current_xact_id());
            return null;
        end;
        $body$ $fn$, path);
end;
$do$;

drop trigger notifications_lock_counts on notifications;
drop function herald_lock_counts();
