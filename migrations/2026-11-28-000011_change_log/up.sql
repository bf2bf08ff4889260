-- What herald keeps in memory (recent rows, unread counts, answered pages: src/hub.rs) must
-- follow every change to notifications and to read state, whoever makes it, or it would answer
-- from a stale copy. Inserts reach it already (the listener reads the rows). This migration
-- makes everything else reach it too:
-- - a DELETE, UPDATE or TRUNCATE of notifications records the channels it touched in
--   `herald_changes` ('*' for a truncate). The listener reads them in the same statement as
--   new rows, so in commit order and at the same snapshot, and upkeep prunes them after ten
--   minutes (a listener is never that far behind; one that reconnects forgets everything);
-- - a change to read state (notification_reads, notification_read_marks), by herald's API or
--   any SQL, records the users it touched in `herald_changes` too ('*' for a truncate), so
--   that unread counts in memory follow it in the same order; and announces itself on
--   `herald_reads` (herald used to announce its own, explicitly), with the ids streams tell
--   other tabs about.
-- A writer that only INSERTs pays nothing new.
create table herald_changes (
    txid xid8 not null default pg_current_xact_id(),
    -- One of the two: a channel whose rows changed, or a user whose read state did.
    channel text,
    reader text,
    at timestamptz not null default now(),
    check ((channel is null) <> (reader is null))
);
create index herald_changes_txid_idx on herald_changes (txid);
create index herald_changes_at_idx on herald_changes (at);

-- The changes committed after snapshot `base`: herald_all_after's predicate, for this log.
create function herald_changes_after(base pg_snapshot)
returns setof herald_changes
language sql stable as $$
    select c.* from herald_changes c
    where c.txid >= pg_snapshot_xmax(base)
      and c.txid < pg_snapshot_xmax(pg_current_snapshot())
    union all
    select c.* from pg_snapshot_xip(base) running(txid)
    cross join lateral (select * from herald_changes c
                        where c.txid = running.txid offset 0) c
$$;

-- Functions that run as their owner resolve names in herald's schema only.
do $do$
declare
    path text := format('pg_catalog, %I', current_schema());
begin
    -- Records that `channels` changed, and wakes the listeners if one waits for a NOTIFY (as
    -- herald_stamp does for inserts).
    execute format($fn$
        create function herald_record_changes(channels text[]) returns void
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- A statement trigger fires for statements that touched no row, too.
            if cardinality(channels) = 0 then
                return;
            end if;
            insert into herald_changes (channel) select distinct unnest(channels);
            if pg_sequence_last_value('herald_armed'::regclass) = 1 then
                perform pg_notify('herald', '');
            end if;
        end;
        $body$ $fn$, path);
    -- Records that the read state of `users` changed, and wakes the listeners likewise.
    execute format($fn$
        create function herald_record_readers(users text[]) returns void
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- A statement trigger fires for statements that touched no row, too.
            if cardinality(users) = 0 then
                return;
            end if;
            insert into herald_changes (reader) select distinct unnest(users);
            if pg_sequence_last_value('herald_armed'::regclass) = 1 then
                perform pg_notify('herald', '');
            end if;
        end;
        $body$ $fn$, path);
    -- As in the parallel_deletes migration, and the channels are recorded.
    execute format($fn$
        create or replace function herald_count_deleted() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- Shared: deleters do not wait for one another. Taken before `through` is read
            -- and held to commit, so no roll-up moves `through` under this count.
            perform pg_advisory_xact_lock_shared(herald_counts_lock());
            insert into notification_count_deltas (channel, total, deleted, deleted_max_txid)
            select d.channel,
                   -count(*) filter (where pg_visible_in_snapshot(d.txid, t.through)),
                   count(*),
                   max(d.txid)
            from deleted_rows d cross join notification_counts_through t
            group by d.channel;
            perform herald_record_changes(array(select distinct channel from deleted_rows));
            return null;
        end;
        $body$ $fn$, path);
    execute format($fn$
        create function herald_record_update() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            perform herald_record_changes(array(select channel from old_rows
                                                union select channel from new_rows));
            return null;
        end;
        $body$ $fn$, path);
    -- As in the parallel_deletes migration, and every channel is recorded as changed.
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
            perform herald_record_changes(array['*']);
            return null;
        end;
        $body$ $fn$, path);
end;
$do$;

create trigger notifications_record_update
    after update on notifications
    referencing old table as old_rows new table as new_rows
    for each statement execute function herald_record_update();

-- Read state announces its changes: `ids` read (at most 300 in one payload: NOTIFY takes 8000
-- bytes), or `all` (a mark), or `changed` (read state went back: a single read or a mark was
-- deleted; streams recount). One payload per user and statement, delivered at commit.
create function herald_reads_inserted() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(select user_id from new_reads));
    for r in select user_id, array_agg(notification_id order by notification_id) as ids
             from new_reads group by user_id loop
        perform pg_notify('herald_reads', case
            when cardinality(r.ids) <= 300
                then json_build_object('user_id', r.user_id, 'ids', r.ids)
            else json_build_object('user_id', r.user_id, 'changed', true)
        end::text);
    end loop;
    return null;
end;
$$;

create function herald_marks_written() returns trigger
language plpgsql as $$
declare
    u text;
begin
    perform herald_record_readers(array(select user_id from new_marks));
    for u in select distinct user_id from new_marks loop
        perform pg_notify('herald_reads', json_build_object('user_id', u, 'all', true)::text);
    end loop;
    return null;
end;
$$;

create function herald_mark_removed() returns trigger
language plpgsql as $$
declare
    u text;
begin
    perform herald_record_readers(array(select user_id from removed));
    for u in select distinct user_id from removed loop
        perform pg_notify('herald_reads', json_build_object('user_id', u, 'changed', true)::text);
    end loop;
    return null;
end;
$$;

-- A single read removed with its notification (pruning cascades here) changes no count: the
-- notification's deletion is recorded in herald_changes. Only the others are announced.
create function herald_reads_removed() returns trigger
language plpgsql as $$
declare
    u text;
    users text[] := array(select distinct r.user_id from removed r
                          where exists (select from notifications n
                                        where n.id = r.notification_id));
begin
    if cardinality(users) > 0 then
        perform herald_record_readers(users);
    end if;
    foreach u in array users loop
        perform pg_notify('herald_reads', json_build_object('user_id', u, 'changed', true)::text);
    end loop;
    return null;
end;
$$;

create trigger notification_reads_announce_insert
    after insert on notification_reads
    referencing new table as new_reads
    for each statement execute function herald_reads_inserted();
create trigger notification_reads_announce_delete
    after delete on notification_reads
    referencing old table as removed
    for each statement execute function herald_reads_removed();
create trigger notification_read_marks_announce_insert
    after insert on notification_read_marks
    referencing new table as new_marks
    for each statement execute function herald_marks_written();
create trigger notification_read_marks_announce_update
    after update on notification_read_marks
    referencing new table as new_marks
    for each statement execute function herald_marks_written();
create trigger notification_read_marks_announce_delete
    after delete on notification_read_marks
    referencing old table as removed
    for each statement execute function herald_mark_removed();

-- Emptying read state by TRUNCATE raises everyone's counts: recorded as '*', which tells every
-- stream to recount too.
create function herald_read_state_truncated() returns trigger
language plpgsql as $$
begin
    perform herald_record_readers(array['*']);
    return null;
end;
$$;
create trigger notification_reads_record_truncate
    after truncate on notification_reads
    for each statement execute function herald_read_state_truncated();
create trigger notification_read_marks_record_truncate
    after truncate on notification_read_marks
    for each statement execute function herald_read_state_truncated();
