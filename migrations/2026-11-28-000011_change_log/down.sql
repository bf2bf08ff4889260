drop trigger notification_read_marks_record_truncate on notification_read_marks;
drop trigger notification_reads_record_truncate on notification_reads;
drop function herald_read_state_truncated();
drop trigger notification_read_marks_announce_delete on notification_read_marks;
drop trigger notification_read_marks_announce_update on notification_read_marks;
drop trigger notification_read_marks_announce_insert on notification_read_marks;
drop trigger notification_reads_announce_delete on notification_reads;
drop trigger notification_reads_announce_insert on notification_reads;
drop function herald_reads_removed();
drop function herald_mark_removed();
drop function herald_marks_written();
drop function herald_reads_inserted();
drop trigger notifications_record_update on notifications;
drop function herald_record_update();

-- The deletion triggers as the parallel_deletes migration made them.
do $do$
declare
    path text := format('pg_catalog, %I', current_schema());
begin
    execute format($fn$
        create or replace function herald_count_deleted() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- Shared: deleters do not wait for one another. Taken before `through` is read
            -- and held to commit, so no roll-up moves `through` under this count. (It used
            -- to be taken before the first row lock, by a trigger of its own, because an
            -- exclusive lock taken after row locks could deadlock; a shared one cannot: the
            -- roll-up never waits for it, and a TRUNCATE excludes deleters by its table lock.)
            perform pg_advisory_xact_lock_shared(herald_counts_lock());
            insert into notification_count_deltas (channel, total, deleted, deleted_max_txid)
            select d.channel,
                   -count(*) filter (where pg_visible_in_snapshot(d.txid, t.through)),
                   count(*),
                   max(d.txid)
            from deleted_rows d cross join notification_counts_through t
            group by d.channel;
            return null;
        end;
        $body$ $fn$, path);
    execute format($fn$
        create or replace function herald_count_truncated() returns trigger
        language plpgsql security definer set search_path = %s as $body$
        begin
            -- Exclusive: a TRUNCATE already excludes deleters (its table lock); this waits
            -- for a roll-up at work.
            perform pg_advisory_xact_lock(herald_counts_lock());
            perform herald_fold_count_deltas();
            -- Every channel with rows gets a counts row, so that the change to `deleted`
            -- reaches the marks that saved a count of it.
            insert into notification_counts (channel)
            select distinct channel from notifications
            on conflict (channel) do nothing;
            -- This transaction's id is newer than any mark's xmin that could have counted
            -- rows.
            update notification_counts
            set total = 0, deleted = deleted + 1,
                deleted_max_txid = greatest(deleted_max_txid, pg_current_xact_id());
            return null;
        end;
        $body$ $fn$, path);
end;
$do$;

drop function herald_record_readers(text[]);
drop function herald_record_changes(text[]);
drop function herald_changes_after(pg_snapshot);
drop table herald_changes;
