alter function herald_count_after(text, pg_snapshot) reset jit;
alter function herald_channel_count(text) reset jit;
alter function herald_unread_count(text) reset jit;
alter function herald_roll_up_counts() reset jit;
alter function herald_newest(text, text[], bigint, boolean) reset jit;
alter function herald_after(text, text[], bigint, boolean, pg_snapshot, pg_snapshot, bigint)
    reset jit;
alter function herald_since(pg_snapshot, pg_snapshot, bigint, bigint) reset jit;
