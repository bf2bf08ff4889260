-- herald_since as the one_after_predicate migration wrote it, and the (txid) index.
create index notifications_txid_idx on notifications (txid);
drop index notifications_txid_id_idx;

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
    select n.* from herald_all_after(base) n
    where not (pg_visible_in_snapshot(n.txid, upto) and n.id <= last_id)
    order by pg_visible_in_snapshot(n.txid, upto) desc, n.id
    limit lim;
end;
$$;
