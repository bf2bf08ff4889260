-- The listener's read under many small transactions (issue 28, writers). The previous
-- migration reads each transaction after the base from the (txid, id) index: two index probes
-- per transaction, which is what makes a bulk insert cheap to read in batches. But the usual
-- load is the other way round: many writers committing a row or two each. With 32 writers,
-- each read found ~250 one-row transactions and took ~1.6 ms over their probes, where one
-- range scan of the same index returns the same rows in ~0.2 ms (per call, in PostgreSQL); at
-- 50 reads a second that was a tenth of a core, taken from the writers herald was reading.
--
-- So when the cursor has no tail (`last_id` 0: the last read was not full, so nothing after
-- the base is consumed yet), the rows of the transactions at or past the base's xmax are read
-- by one range scan, which gives up past 2 * lim rows; the transactions running at the base
-- are read one index range each, as before. A range of at most 2 * lim rows holds all of
-- them, so the answer (the first lim in cursor order, the tail's rows left out as below, which
-- keeps it exact for any arguments) is the per-transaction read's. Past 2 * lim, that read
-- answers.
--
-- A bulk insert pays one abandoned range scan of 2 * lim rows, once: the read after it is
-- full, and every read after a full one (a tail) goes the per-transaction way.
create or replace function herald_since(base pg_snapshot, upto pg_snapshot, last_id bigint,
                                        lim bigint)
returns setof notifications
language plpgsql stable
set enable_seqscan = off
set plan_cache_mode = force_generic_plan
set jit = off
as $$
begin
    if last_id < 1 then
        return query
        with range as materialized (
            select * from notifications n
            where n.txid >= pg_snapshot_xmax(base)
              and n.txid < pg_snapshot_xmax(pg_current_snapshot())
            order by n.txid, n.id
            limit 2 * lim + 1
        ), whole as (
            select count(*) <= 2 * lim as yes from range
        )
        select r.* from (
            select * from range
            union all
            select n.* from pg_snapshot_xip(base) running(txid)
            cross join lateral (
                select * from notifications n
                where n.txid = running.txid
                order by n.txid, n.id
                limit lim
            ) n
        ) r
        where (select yes from whole)
          -- Ids are positive, so with last_id 0 this leaves out nothing; a row given an id
          -- of its own (OVERRIDING SYSTEM VALUE) may not be, and is then left out as below.
          and not (pg_visible_in_snapshot(r.txid, upto) and r.id <= last_id)
        order by pg_visible_in_snapshot(r.txid, upto) desc, r.id
        limit lim;
        -- Nothing found: the range was too long, or there is nothing after the base (which
        -- the read below confirms, with one index probe and one per transaction running at
        -- the base).
        if found then
            return;
        end if;
    end if;
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
