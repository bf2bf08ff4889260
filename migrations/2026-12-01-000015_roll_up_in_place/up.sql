-- The roll-up wrote more WAL than it needed to (issue 14, `herald-bench writers`): it bumped
-- each channel's total with INSERT ... ON CONFLICT DO UPDATE, which logs a row lock before
-- each update, and the updates rarely found room on their page, so most also added an index
-- entry. Writers that commit one row at a time wait mostly on WAL flushes, and with 1,000
-- channels written to, that was 7,403 lock and 3,628 update records (830 KB of heap records,
-- plus the index entries) in 5 s of 8 writers (pg_walinspect). Existing channels are now
-- bumped by a plain UPDATE, and the table leaves half of each page free, so the new version
-- of a row mostly stays on its page with no new index entry (a HOT update): 404 KB, and 966
-- updates with an index entry, in a run like it. Pages written before this migration get the
-- room as their rows move.
alter table notification_counts set (fillfactor = 50);

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
    ), bumped as (
        update notification_counts c set total = c.total + f.added
        from fresh f
        where c.channel = f.channel
        returning c.channel
    ), added as (
        -- Channels new since the last roll-up. (The counts lock keeps out every other writer
        -- of this table; the conflict clause is only a guard.)
        insert into notification_counts as c (channel, total)
        select f.channel, f.added from fresh f
        where not exists (select from bumped b where b.channel = f.channel)
        on conflict (channel) do update set total = c.total + excluded.total
    )
    update notification_counts_through set through = pg_current_snapshot();
    return true;
end;
$$;
