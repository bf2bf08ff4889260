create or replace function herald_since(base pg_snapshot, upto pg_snapshot, last_id bigint,
                                        lim bigint)
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

create or replace function herald_channel_after(ch text, base pg_snapshot)
returns setof notifications
language sql stable as $$
    select n.* from notifications n
    where n.channel = ch and n.txid >= pg_snapshot_xmax(base)
    union all
    select n.* from pg_snapshot_xip(base) running(txid)
    cross join lateral (select * from notifications n
                        where n.channel = ch and n.txid = running.txid offset 0) n
$$;

drop function herald_repair_txids();
drop function herald_arm(boolean);

create function herald_wake() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from herald_listeners where armed) then
        perform pg_notify('herald', '');
    end if;
    return null;
end;
$$;

create trigger notifications_wake
    after insert on notifications
    for each statement execute function herald_wake();

drop trigger notifications_stamp on notifications;
drop function herald_stamp();
drop sequence herald_armed;
