-- The settings herald's reads need belong to its functions, not to the session: behind a
-- pooler in transaction mode (PgBouncer), a session's `SET` lands on whichever server
-- connection ran it, is lost to herald and leaks to other clients. herald used to
-- `set jit = off` on each pooled connection: JIT compiling one of these small, indexed reads
-- costs hundreds of milliseconds, and PostgreSQL decides to from cost estimates that a skewed
-- statistic can inflate (measured: 300 ms of JIT for a 1 ms read of new rows). Each function
-- already sets its `plan_cache_mode`; now its `jit` too. (`herald_channel_after` has no
-- settings, so it stays inlined into its callers, whose settings apply.)
alter function herald_count_after(text, pg_snapshot) set jit = off;
alter function herald_channel_count(text) set jit = off;
alter function herald_unread_count(text) set jit = off;
alter function herald_roll_up_counts() set jit = off;
alter function herald_newest(text, text[], bigint, boolean) set jit = off;
alter function herald_after(text, text[], bigint, boolean, pg_snapshot, pg_snapshot, bigint)
    set jit = off;
alter function herald_since(pg_snapshot, pg_snapshot, bigint, bigint) set jit = off;
