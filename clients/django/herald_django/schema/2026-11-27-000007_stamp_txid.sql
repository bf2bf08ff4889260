-- Every row's `txid` is the transaction that wrote it, whatever a writer (or a restore) put
-- there: cursors compare it with snapshots (src/cursor.rs). A hand-set future txid made every
-- listener read find the row again (a hot loop, a duplicate per read), and a past one hid the
-- row from every cursor.
--
-- The same trigger wakes herald, replacing the statement trigger `notifications_wake`: its
-- lookup in herald_listeners ran a query per writing statement, 10-18% of a single-row
-- INSERT. Whether some herald wants a NOTIFY ("armed") is now the sequence `herald_armed`,
-- which a writer reads with one function call. A sequence is not transactional: the moment
-- herald sets it, every writer sees the new value whatever its snapshot or isolation level,
-- so re-arming only has to wait for the transactions that already hold an id
-- (src/listener.rs).
create sequence herald_armed minvalue 0 maxvalue 1;
-- Armed while some listener is (none: nobody would hear a NOTIFY). herald_arm keeps it so.
select setval('herald_armed', (select count(*) filter (where armed) > 0
                               from herald_listeners)::int);
-- Writers read it (it is not a secret); only its owner, herald, sets it.
grant select on sequence herald_armed to public;

-- The sequence is named with the schema the migrations run in, so a writer's search_path
-- cannot change what the trigger reads, and no per-call `set search_path` is paid. The
-- function runs with the writer's rights: it only needs the sequence's SELECT.
do $do$
begin
    execute format($fn$
        create function herald_stamp() returns trigger
        language plpgsql as $body$
        begin
            new.txid := pg_current_xact_id();
            -- Read after the transaction has its id: re-arming waits for every transaction
            -- that held one when it switched, so one that read "disarmed" is never missed.
            if pg_sequence_last_value(%L::regclass) = 1 then
                -- Empty payload: a transaction's wake-ups fold into one, and rows of any
                -- size are read from the table, never squeezed into NOTIFY's 8000 bytes.
                perform pg_notify('herald', '');
            end if;
            return new;
        end;
        $body$ $fn$, format('%I.herald_armed', current_schema()));
end;
$do$;

create trigger notifications_stamp
    before insert on notifications
    for each row execute function herald_stamp();

drop trigger notifications_wake on notifications;
drop function herald_wake();

-- Sets this session's listener armed if `want` or not (null: it leaves), and the sequence to whether
-- any listener is. Instances take turns (the lock), so the sequence always ends up saying what
-- the table says. Listeners of sessions that are gone (an instance killed) are forgotten on
-- the way.
create function herald_arm(want boolean) returns void
language plpgsql as $$
begin
    perform pg_advisory_xact_lock(7454514);
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

-- Rows whose txid no transaction has reached yet (restored with triggers off from a cluster
-- further along) would never be "committed after" a cursor. Readers skip them (below), and
-- herald's upkeep calls this to give them its own transaction's id: they are then delivered
-- once, like any new row. Returns how many it repaired. (A row restored with a txid in the
-- past is history: every cursor is already past it.)
create function herald_repair_txids() returns bigint
language plpgsql as $$
declare
    repaired bigint;
begin
    update notifications set txid = pg_current_xact_id()
    where txid >= pg_snapshot_xmax(pg_current_snapshot());
    get diagnostics repaired = row_count;
    if repaired > 0 then
        -- An UPDATE wakes no listener by itself.
        perform pg_notify('herald', '');
    end if;
    return repaired;
end;
$$;

-- The readers of "committed after a snapshot" stop at the current snapshot's xmax, which no
-- committed row of a real transaction reaches: a row from the future is skipped until
-- repaired, instead of being returned by every read.
create or replace function herald_channel_after(ch text, base pg_snapshot)
returns setof notifications
language sql stable as $$
    select n.* from notifications n
    where n.channel = ch and n.txid >= pg_snapshot_xmax(base)
      and n.txid < pg_snapshot_xmax(pg_current_snapshot())
    union all
    select n.* from pg_snapshot_xip(base) running(txid)
    -- `offset 0` keeps this a lookup per transaction: pulled up into a join, it is planned
    -- as a hash join over the whole channel.
    cross join lateral (select * from notifications n
                        where n.channel = ch and n.txid = running.txid offset 0) n
$$;

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
        select * from notifications n
        where n.txid >= pg_snapshot_xmax(base)
          and n.txid < pg_snapshot_xmax(pg_current_snapshot())
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
