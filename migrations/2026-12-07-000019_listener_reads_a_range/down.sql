-- herald_since as the listener_reads_by_transaction migration wrote it.

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
    with recursive later(txid) as (
        -- The transactions at or past the base's xmax with a row, in turn (as in
        -- herald_all_after, never past the current snapshot's xmax).
        select min(n.txid) from notifications n
        where n.txid >= pg_snapshot_xmax(base)
          and n.txid < pg_snapshot_xmax(pg_current_snapshot())
        union all
        select (select min(n.txid) from notifications n
                where n.txid > later.txid
                  and n.txid < pg_snapshot_xmax(pg_current_snapshot()))
        from later
        where later.txid is not null
    ), after_base(txid) as (
        select later.txid from later where later.txid is not null
        union all
        select running.txid from pg_snapshot_xip(base) running(txid)
    )
    select n.* from after_base t
    cross join lateral (
        -- Of a transaction `upto` sees, the tail consumed the ids up to last_id. Written as a
        -- row comparison in the index's order: then only the (txid, id) index serves it. With
        -- `n.id > ...` the generic plan may walk the primary key in id order and filter on
        -- txid, which after a bulk insert's skewed statistics looks as cheap and is a scan of
        -- the table.
        select * from notifications n
        where n.txid = t.txid
          and (n.txid, n.id) > (t.txid, case when pg_visible_in_snapshot(t.txid, upto)
                                             then last_id
                                             else '-9223372036854775808'::bigint end)
        order by n.txid, n.id
        limit lim
    ) n
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;
