-- The inbox states of SPEC section 12: seen, archived, and unread again, per user, at the cost
-- read state has (one write however large the inbox; counts independent of its size).
--
-- The model, per user:
-- - read: as before, a mark (`notification_read_marks`: every row visible in its snapshot is
--   read) plus single reads since (`notification_reads`), and now exceptions to the mark:
--   `notification_unreads`, rows the mark covers that were made unread again;
-- - seen: a mark too (`notification_seen_marks`). A row is seen if it is read or the seen mark
--   covers it, so there is no per-row seen state: "unread again" leaves a row seen if the seen
--   mark covers it, and unseen otherwise. The seen mark is never behind the read mark (a
--   trigger moves it with every read mark, whoever writes it), so the rows the seen mark does
--   not cover are unread unless read one by one, and `herald_unseen_count` is
--   `herald_unread_count`'s statement over the seen mark;
-- - archived: a mark (`notification_archive_marks`, "archive all") plus per-row states
--   (`notification_archives`: true, or false for a row unarchived although the mark covers
--   it). Archiving reads the row too (herald's API does both, and "archive all" moves the read
--   mark with it), so an archived row is read and counts never look at archive state.
--
-- Every mark stores a snapshot and moves only forward. Marks that count (read and seen) save
-- their inbox channels' counts as of their snapshot, as the unread_counts migration explains.
-- Every change is recorded in herald_changes and announced on `herald_reads`, like read
-- state (the change_log migration), whether herald or the app's SQL makes it: the payload is
-- `{"user_id", "event": read|seen|archived|unarchived|unread|changed, "ids"?, "all"?,
-- "through"?}`.

create table notification_seen_marks (
    user_id text primary key,
    seen_through pg_snapshot not null,
    -- The inbox channels' row counts visible in `seen_through`, and their deletion counters
    -- then (as notification_read_marks.inbox_seen and the rest).
    inbox_count bigint,
    inbox_deleted bigint,
    broadcast_count bigint,
    broadcast_deleted bigint,
    marked_at timestamptz not null default now()
);

create table notification_unreads (
    user_id text not null,
    notification_id bigint not null
        constraint notification_unreads_notification_fk
        references notifications (id) on delete cascade,
    unread_at timestamptz not null default now(),
    primary key (user_id, notification_id)
);
create index notification_unreads_notification_id_idx on notification_unreads (notification_id);

create table notification_archives (
    user_id text not null,
    notification_id bigint not null
        constraint notification_archives_notification_fk
        references notifications (id) on delete cascade,
    archived boolean not null,
    changed_at timestamptz not null default now(),
    primary key (user_id, notification_id)
);
create index notification_archives_notification_id_idx on notification_archives (notification_id);

create table notification_archive_marks (
    user_id text primary key,
    archived_through pg_snapshot not null,
    marked_at timestamptz not null default now()
);

-- True if snapshot `a` was taken no earlier than `b` (src/cursor.rs, Snapshot::is_at_or_after).
create function herald_snapshot_at_or_after(a pg_snapshot, b pg_snapshot) returns boolean
language sql immutable as $$
    select pg_snapshot_xmax(a) > pg_snapshot_xmax(b)
        or (pg_snapshot_xmax(a) = pg_snapshot_xmax(b)
            and (select count(*) from pg_snapshot_xip(a)) <= (select count(*) from pg_snapshot_xip(b)))
$$;

-- How many rows of `ch` are visible in `snap` and still exist, as the calling statement sees it.
create function herald_count_in(ch text, snap pg_snapshot) returns bigint
language sql stable as $$
    select herald_channel_count(ch) - (select count(*) from herald_channel_after(ch, snap))
$$;

do $do$
declare
    path text := format('pg_catalog, %I', current_schema());
begin
    -- Marks `reader`'s inbox seen through `through`, unless a later seen mark is there.
    execute format($fn$
        create function herald_mark_seen(reader text, through pg_snapshot) returns void
        language sql security definer set search_path = %s as $body$
            insert into notification_seen_marks as s (user_id, seen_through, inbox_count,
                inbox_deleted, broadcast_count, broadcast_deleted)
            select reader, through,
                   herald_count_in('user:' || reader, through),
                   coalesce((select deleted from notification_counts_now
                             where channel = 'user:' || reader), 0),
                   herald_count_in('broadcast', through),
                   coalesce((select deleted from notification_counts_now
                             where channel = 'broadcast'), 0)
            on conflict (user_id) do update
            set seen_through = excluded.seen_through, inbox_count = excluded.inbox_count,
                inbox_deleted = excluded.inbox_deleted,
                broadcast_count = excluded.broadcast_count,
                broadcast_deleted = excluded.broadcast_deleted, marked_at = now()
            where herald_snapshot_at_or_after(excluded.seen_through, s.seen_through)
              and excluded.seen_through::text <> s.seen_through::text
        $body$ $fn$, path);
    -- Marks `reader`'s notifications read through `through` ("archive all" up to a cursor),
    -- unless a later read mark is there. The caller then clears the single reads and
    -- unread-again rows the mark covers.
    execute format($fn$
        create function herald_mark_read(reader text, through pg_snapshot) returns void
        language sql security definer set search_path = %s as $body$
            insert into notification_read_marks as m (user_id, read_through, inbox_seen,
                inbox_deleted, broadcast_seen, broadcast_deleted)
            select reader, through,
                   herald_count_in('user:' || reader, through),
                   coalesce((select deleted from notification_counts_now
                             where channel = 'user:' || reader), 0),
                   herald_count_in('broadcast', through),
                   coalesce((select deleted from notification_counts_now
                             where channel = 'broadcast'), 0)
            on conflict (user_id) do update
            set read_through = excluded.read_through, inbox_seen = excluded.inbox_seen,
                inbox_deleted = excluded.inbox_deleted,
                broadcast_seen = excluded.broadcast_seen,
                broadcast_deleted = excluded.broadcast_deleted, marked_at = now()
            where herald_snapshot_at_or_after(excluded.read_through, m.read_through)
              and excluded.read_through::text <> m.read_through::text
        $body$ $fn$, path);
    -- A read mark is a seen mark too: the seen mark follows it forward.
    execute format($fn$
        create function herald_read_mark_sees() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            insert into notification_seen_marks as s (user_id, seen_through, inbox_count,
                inbox_deleted, broadcast_count, broadcast_deleted)
            values (new.user_id, new.read_through, new.inbox_seen, new.inbox_deleted,
                    new.broadcast_seen, new.broadcast_deleted)
            on conflict (user_id) do update
            set seen_through = excluded.seen_through, inbox_count = excluded.inbox_count,
                inbox_deleted = excluded.inbox_deleted,
                broadcast_count = excluded.broadcast_count,
                broadcast_deleted = excluded.broadcast_deleted, marked_at = now()
            where herald_snapshot_at_or_after(excluded.seen_through, s.seen_through)
              and excluded.seen_through::text <> s.seen_through::text;
            return null;
        end;
        $body$ $fn$, path);
end;
$do$;

create trigger notification_read_marks_see
    after insert or update on notification_read_marks
    for each row execute function herald_read_mark_sees();

-- Users who read before this migration have seen what they read.
insert into notification_seen_marks (user_id, seen_through, inbox_count, inbox_deleted,
                                     broadcast_count, broadcast_deleted, marked_at)
select user_id, read_through, inbox_seen, inbox_deleted, broadcast_seen, broadcast_deleted,
       marked_at
from notification_read_marks;

-- As the one_after_predicate migration's, plus the rows the mark covers that were made unread
-- again, and with sequential scans off, as the listener's reads have them: a bulk insert of
-- many rows in one transaction skews the txid statistics, and the generic plan then looked up
-- each transaction a snapshot lists as running by scanning the whole channel (20,000 rows
-- read per running transaction, measured on a busy server; the page functions below alike).
create or replace function herald_unread_count(reader text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
set enable_seqscan = off
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
         and not coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false))
    -- Rows the mark covers, made unread again.
    + (select count(*) from notification_unreads u
       join notifications n on n.id = u.notification_id
       join notification_read_marks m on m.user_id = reader
       where u.user_id = reader and n.channel in ('user:' || reader, 'broadcast')
         and pg_visible_in_snapshot(n.txid, m.read_through));
end;
$$;

-- `reader`'s unseen count: the unread rows the seen mark does not cover. The same statement
-- as herald_unread_count's, over the seen mark (or the read mark, should an app have deleted
-- the seen mark); no unread-again row is among them, as the read mark covers those.
create function herald_unseen_count(reader text) returns bigint
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
set enable_seqscan = off
as $$
begin
    return (
        with mark (through, inbox_count, inbox_deleted, broadcast_count, broadcast_deleted) as (
            select coalesce(s.seen_through, r.read_through),
                   case when s.user_id is null then r.inbox_seen else s.inbox_count end,
                   case when s.user_id is null then r.inbox_deleted else s.inbox_deleted end,
                   case when s.user_id is null then r.broadcast_seen else s.broadcast_count end,
                   case when s.user_id is null then r.broadcast_deleted
                        else s.broadcast_deleted end
            from (select) as one
            left join notification_seen_marks s on s.user_id = reader
            left join notification_read_marks r on r.user_id = reader
        ), inbox (channel, through, seen, seen_deleted) as (
            select 'user:' || reader, through, inbox_count, inbox_deleted from mark
            union all
            select 'broadcast', through, broadcast_count, broadcast_deleted from mark
        )
        select sum(
            case when i.through is null
                      or (i.seen is not null
                          and (i.seen_deleted = coalesce(c.deleted, 0)
                               or c.deleted_max_txid < pg_snapshot_xmin(i.through)))
                 then coalesce(c.total, 0)
                      - coalesce(i.seen - (coalesce(c.deleted, 0) - i.seen_deleted), 0)
                      + (select count(*) from notification_counts_through t,
                                              herald_channel_after(i.channel, t.through))
                 else (select count(*) from herald_channel_after(i.channel, i.through))
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
    - (select count(*) from notification_reads r
       join notifications n on n.id = r.notification_id
       left join notification_seen_marks s on s.user_id = reader
       left join notification_read_marks m on m.user_id = reader
       where r.user_id = reader and n.channel in ('user:' || reader, 'broadcast')
         and not coalesce(pg_visible_in_snapshot(n.txid, coalesce(s.seen_through,
                                                                   m.read_through)), false));
end;
$$;

-- Pages carry seen and archived state, and leave archived rows out (or list only them).
drop function herald_newest(text, text[], bigint, boolean);
drop function herald_after(text, text[], bigint, boolean, pg_snapshot, pg_snapshot, bigint);

-- As the page_functions migration's, with the reader's whole state per row. A row is read if
-- the read mark covers it and it was not made unread again, or it was read singly; seen if
-- read or the seen mark covers it; archived as its own state says, else as the archive mark.
create function herald_newest(reader text, chans text[], lim bigint, unread_only boolean,
                              archived_only boolean)
returns table (id bigint, channel text, title text, body text, kind text, level text,
               data jsonb, created_at timestamptz, txid xid8, read boolean, seen boolean,
               archived boolean)
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
    read_through pg_snapshot :=
        (select m.read_through from notification_read_marks m where m.user_id = reader);
    seen_through pg_snapshot := coalesce(
        (select s.seen_through from notification_seen_marks s where s.user_id = reader),
        read_through);
    archived_through pg_snapshot :=
        (select a.archived_through from notification_archive_marks a where a.user_id = reader);
begin
    return query
    select n.id, n.channel, n.title, n.body, n.kind, n.level, n.data, n.created_at, n.txid,
           n.read, n.read or coalesce(pg_visible_in_snapshot(n.txid, seen_through), false),
           n.archived
    from unnest(chans) as c(channel)
    cross join lateral (
        select n.*, st.read, st.archived
        from notifications n
        cross join lateral (
            select (coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                    and not exists (select from notification_unreads u
                                    where u.user_id = reader and u.notification_id = n.id))
                   or exists (select from notification_reads r
                              where r.user_id = reader and r.notification_id = n.id) as read,
                   coalesce((select a.archived from notification_archives a
                             where a.user_id = reader and a.notification_id = n.id),
                            pg_visible_in_snapshot(n.txid, archived_through),
                            false) as archived
        ) st
        where n.channel = c.channel
          and st.archived = archived_only
          and not (unread_only and st.read)
        order by n.id desc
        limit lim
    ) n
    order by n.id desc
    limit lim;
end;
$$;

create function herald_after(
    reader text, chans text[], lim bigint, unread_only boolean, archived_only boolean,
    base pg_snapshot, upto pg_snapshot, last_id bigint
)
returns table (id bigint, channel text, title text, body text, kind text, level text,
               data jsonb, created_at timestamptz, txid xid8, read boolean, seen boolean,
               archived boolean)
language plpgsql stable
set plan_cache_mode = force_generic_plan
set jit = off
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
    read_through pg_snapshot :=
        (select m.read_through from notification_read_marks m where m.user_id = reader);
    seen_through pg_snapshot := coalesce(
        (select s.seen_through from notification_seen_marks s where s.user_id = reader),
        read_through);
    archived_through pg_snapshot :=
        (select a.archived_through from notification_archive_marks a where a.user_id = reader);
begin
    return query
    select n.id, n.channel, n.title, n.body, n.kind, n.level, n.data, n.created_at, n.txid,
           n.read, n.read or coalesce(pg_visible_in_snapshot(n.txid, seen_through), false),
           n.archived
    from unnest(chans) as c(channel)
    cross join lateral (
        select n.*, st.read, st.archived
        from herald_channel_after(c.channel, base) n
        cross join lateral (
            select (coalesce(pg_visible_in_snapshot(n.txid, read_through), false)
                    and not exists (select from notification_unreads u
                                    where u.user_id = reader and u.notification_id = n.id))
                   or exists (select from notification_reads r
                              where r.user_id = reader and r.notification_id = n.id) as read,
                   coalesce((select a.archived from notification_archives a
                             where a.user_id = reader and a.notification_id = n.id),
                            pg_visible_in_snapshot(n.txid, archived_through),
                            false) as archived
        ) st
        where not (pg_visible_in_snapshot(n.txid, upto) and n.id <= last_id)
          and st.archived = archived_only
          and not (unread_only and st.read)
        order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
        limit lim
    ) n
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;

-- Announcements. Ids are listed up to 300 per payload (NOTIFY takes 8000 bytes); past that a
-- payload says `changed` (streams recount, tabs reload nothing).
create function herald_announce(reader text, event text, ids bigint[]) returns void
language plpgsql as $$
begin
    perform pg_notify('herald_reads', case
        when cardinality(ids) <= 300
            then json_build_object('user_id', reader, 'event', event, 'ids', ids)
        else json_build_object('user_id', reader, 'event', 'changed')
    end::text);
end;
$$;

-- Read state's own announcements, in the payload above (the change_log migration's, which
-- said `{"ids"}`, `{"all"}` or `{"changed"}`). A single read deleted is the row made unread
-- again, unless the read mark covers the row (a "mark all read" clears the single reads it
-- covers: nothing is unread).
create or replace function herald_reads_inserted() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(select user_id from new_reads));
    for r in select user_id, array_agg(notification_id order by notification_id) as ids
             from new_reads group by user_id loop
        perform herald_announce(r.user_id, 'read', r.ids);
    end loop;
    return null;
end;
$$;

create or replace function herald_marks_written() returns trigger
language plpgsql as $$
declare
    u text;
begin
    perform herald_record_readers(array(select user_id from new_marks));
    for u in select distinct user_id from new_marks loop
        perform pg_notify('herald_reads',
                          json_build_object('user_id', u, 'event', 'read', 'all', true)::text);
    end loop;
    return null;
end;
$$;

create or replace function herald_mark_removed() returns trigger
language plpgsql as $$
declare
    u text;
begin
    perform herald_record_readers(array(select user_id from removed));
    for u in select distinct user_id from removed loop
        perform pg_notify('herald_reads',
                          json_build_object('user_id', u, 'event', 'changed')::text);
    end loop;
    return null;
end;
$$;

-- A row removed with its notification (pruning cascades here) changes no count: the
-- notification's deletion is recorded in herald_changes. Only the others are announced.
create or replace function herald_reads_removed() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(
        select distinct d.user_id from removed d
        where exists (select from notifications n where n.id = d.notification_id)));
    for r in select d.user_id, array_agg(d.notification_id order by d.notification_id) as ids
             from removed d
             join notifications n on n.id = d.notification_id
             left join notification_read_marks m on m.user_id = d.user_id
             where not coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false)
             group by d.user_id loop
        perform herald_announce(r.user_id, 'unread', r.ids);
    end loop;
    return null;
end;
$$;

create function herald_unreads_inserted() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(select user_id from added));
    for r in select user_id, array_agg(notification_id order by notification_id) as ids
             from added group by user_id loop
        perform herald_announce(r.user_id, 'unread', r.ids);
    end loop;
    return null;
end;
$$;

-- An unread-again row removed is read again (by the read mark), unless its notification went.
create function herald_unreads_removed() returns trigger
language plpgsql as $$
declare
    r record;
begin
    for r in select d.user_id, array_agg(d.notification_id order by d.notification_id) as ids
             from removed d
             where exists (select from notifications n where n.id = d.notification_id)
             group by d.user_id loop
        perform herald_record_readers(array[r.user_id]);
        perform herald_announce(r.user_id, 'read', r.ids);
    end loop;
    return null;
end;
$$;

create function herald_seen_marks_written() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(select user_id from new_marks));
    for r in select user_id, seen_through from new_marks loop
        perform pg_notify('herald_reads', json_build_object(
            'user_id', r.user_id, 'event', 'seen', 'through', r.seen_through::text)::text);
    end loop;
    return null;
end;
$$;

-- Archiving reads: whoever archives (herald, or the app's SQL), the row is read too, so that
-- counts need not look at archive state.
create function herald_archives_written() returns trigger
language plpgsql as $$
declare
    r record;
begin
    insert into notification_reads (user_id, notification_id)
    select s.user_id, s.notification_id from new_states s
    join notifications n on n.id = s.notification_id
    left join notification_read_marks m on m.user_id = s.user_id
    where s.archived and not coalesce(pg_visible_in_snapshot(n.txid, m.read_through), false)
    on conflict do nothing;
    delete from notification_unreads u using new_states s
    where s.archived and u.user_id = s.user_id and u.notification_id = s.notification_id;
    perform herald_record_readers(array(select user_id from new_states));
    for r in select user_id, archived,
                    array_agg(notification_id order by notification_id) as ids
             from new_states group by user_id, archived loop
        perform herald_announce(r.user_id,
                                case when r.archived then 'archived' else 'unarchived' end,
                                r.ids);
    end loop;
    return null;
end;
$$;

-- A row's own archive state removed: it is as the archive mark says, which may differ.
create function herald_archives_removed() returns trigger
language plpgsql as $$
declare
    u text;
begin
    for u in select distinct d.user_id from removed d
             where exists (select from notifications n where n.id = d.notification_id) loop
        perform herald_record_readers(array[u]);
        perform pg_notify('herald_reads',
                          json_build_object('user_id', u, 'event', 'changed')::text);
    end loop;
    return null;
end;
$$;

create function herald_archive_marks_written() returns trigger
language plpgsql as $$
declare
    r record;
begin
    perform herald_record_readers(array(select user_id from new_marks));
    for r in select user_id, archived_through from new_marks loop
        perform pg_notify('herald_reads', json_build_object(
            'user_id', r.user_id, 'event', 'archived', 'all', true,
            'through', r.archived_through::text)::text);
    end loop;
    return null;
end;
$$;

create trigger notification_unreads_announce_insert
    after insert on notification_unreads
    referencing new table as added
    for each statement execute function herald_unreads_inserted();
create trigger notification_unreads_announce_delete
    after delete on notification_unreads
    referencing old table as removed
    for each statement execute function herald_unreads_removed();
create trigger notification_seen_marks_announce_insert
    after insert on notification_seen_marks
    referencing new table as new_marks
    for each statement execute function herald_seen_marks_written();
create trigger notification_seen_marks_announce_update
    after update on notification_seen_marks
    referencing new table as new_marks
    for each statement execute function herald_seen_marks_written();
create trigger notification_seen_marks_announce_delete
    after delete on notification_seen_marks
    referencing old table as removed
    for each statement execute function herald_mark_removed();
create trigger notification_archives_announce_insert
    after insert on notification_archives
    referencing new table as new_states
    for each statement execute function herald_archives_written();
create trigger notification_archives_announce_update
    after update on notification_archives
    referencing new table as new_states
    for each statement execute function herald_archives_written();
create trigger notification_archives_announce_delete
    after delete on notification_archives
    referencing old table as removed
    for each statement execute function herald_archives_removed();
create trigger notification_archive_marks_announce_insert
    after insert on notification_archive_marks
    referencing new table as new_marks
    for each statement execute function herald_archive_marks_written();
create trigger notification_archive_marks_announce_update
    after update on notification_archive_marks
    referencing new table as new_marks
    for each statement execute function herald_archive_marks_written();
create trigger notification_archive_marks_announce_delete
    after delete on notification_archive_marks
    referencing old table as removed
    for each statement execute function herald_mark_removed();
create trigger notification_seen_marks_record_truncate
    after truncate on notification_seen_marks
    for each statement execute function herald_read_state_truncated();
create trigger notification_unreads_record_truncate
    after truncate on notification_unreads
    for each statement execute function herald_read_state_truncated();
create trigger notification_archives_record_truncate
    after truncate on notification_archives
    for each statement execute function herald_read_state_truncated();
create trigger notification_archive_marks_record_truncate
    after truncate on notification_archive_marks
    for each statement execute function herald_read_state_truncated();

-- The announcing triggers run as their owner: a writer who may only delete notifications
-- cascades into these tables, and the triggers read what the writer may not (`txid`, marks).
do $do$
declare
    path text := format('pg_catalog, %I', current_schema());
    fn text;
begin
    foreach fn in array array[
        'herald_reads_inserted()', 'herald_marks_written()', 'herald_mark_removed()',
        'herald_reads_removed()', 'herald_unreads_inserted()', 'herald_unreads_removed()',
        'herald_seen_marks_written()', 'herald_archives_written()', 'herald_archives_removed()',
        'herald_archive_marks_written()'
    ] loop
        execute format('alter function %s security definer set search_path = %s', fn, path);
    end loop;
end;
$do$;
