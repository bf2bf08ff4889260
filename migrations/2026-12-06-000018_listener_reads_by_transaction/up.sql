-- The listener's read after a bulk insert (issue 28). herald_since took every row of each
-- transaction after the cursor's base, then dropped those the cursor's tail had consumed and
-- sorted the rest. After one transaction of 100,000 rows, each read of 500 fetched and sorted
-- all that remained of it: 200 reads of up to 100,000 rows, ~17 s before herald had them all,
-- and every remembered answer of those users stale, so polls went to the database, until then.
--
-- Now each transaction after the base gives only what the cursor has not consumed, in id
-- order, at most `lim` rows, from an index range on (txid, id), and the transactions are
-- found one index probe each (a loose index scan), not row by row. A read costs about what it
-- returns, plus a probe per transaction committed since the base.
--
-- Same rows, same order as before: a transaction's rows are all visible in `upto` or none
-- are, so the first `lim` of the whole answer are among the first `lim` of each transaction.
--
-- The (txid) index is a prefix of the new one, which serves its lookups too. Building the new
-- index holds back writers while it runs, as any index a migration adds: on a table of many
-- millions of rows, run `herald migrate` at a quiet moment.
create index notifications_txid_id_idx on notifications (txid, id);
drop index notifications_txid_idx;

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
