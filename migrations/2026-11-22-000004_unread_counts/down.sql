drop trigger notifications_count_truncated on notifications;
drop function herald_count_truncated();
drop trigger notifications_count_deleted on notifications;
drop function herald_count_deleted();
drop trigger notifications_lock_counts on notifications;
drop function herald_lock_counts();
drop function herald_roll_up_counts();
drop function herald_unread_count(text);
drop function herald_channel_count(text);
drop function herald_count_after(text, pg_snapshot);
drop function herald_counts_lock();
alter table notification_read_marks
    drop column inbox_seen,
    drop column inbox_deleted,
    drop column broadcast_seen,
    drop column broadcast_deleted;
drop table notification_counts_through;
drop table notification_counts;
