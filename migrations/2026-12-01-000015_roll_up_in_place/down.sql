alter table notification_counts reset (fillfactor);

create or replace function herald_roll_up_counts(patient boolean default false)
returns boolean
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
    with fresh as (
        select n.channel, count(*) as added
        from notification_counts_through t, herald_all_after(t.through) n
        group by n.channel
    ), added as (
        insert into notification_counts as c (channel, total)
        select channel, added from fresh
        on conflict (channel) do update set total = c.total + excluded.total
    )
    update notification_counts_through set through = pg_current_snapshot();
    return true;
end;
$$;
