drop trigger notification_archive_marks_record_truncate on notification_archive_marks;
drop trigger notification_archives_record_truncate on notification_archives;
drop trigger notification_unreads_record_truncate on notification_unreads;
drop trigger notification_seen_marks_record_truncate on notification_seen_marks;
drop trigger notification_read_marks_see on notification_read_marks;
drop table notification_archive_marks, notification_archives, notification_unreads,
           notification_seen_marks;
drop function herald_archive_marks_written();
drop function herald_archives_removed();
drop function herald_archives_written();
drop function herald_seen_marks_written();
drop function herald_unreads_removed();
drop function herald_unreads_inserted();
drop function herald_read_mark_sees();
drop function herald_mark_read(text, pg_snapshot);
drop function herald_mark_seen(text, pg_snapshot);
drop function herald_count_in(text, pg_snapshot);
drop function herald_snapshot_at_or_after(pg_snapshot, pg_snapshot);
drop function herald_unseen_count(text);
drop function herald_newest(text, text[], bigint, boolean, boolean);
drop function herald_after(text, text[], bigint, boolean, boolean, pg_snapshot, pg_snapshot,
                           bigint);

-- The page functions, unread count and announcements as the migrations before made them.

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

alter function herald_newest(text, text[], bigint, boolean) set jit = off;
alter function herald_after(text, text[], bigint, boolean, pg_snapshot, pg_snapshot, bigint)
    set jit = off;

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

create or replace function herald_reads_inserted() returns trigger
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

create or replace function herald_marks_written() returns trigger
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

create or replace function herald_mark_removed() returns trigger
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

create or replace function herald_reads_removed() returns trigger
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

drop function herald_announce(text, text, bigint[]);
