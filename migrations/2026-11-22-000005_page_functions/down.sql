drop function herald_since(pg_snapshot, pg_snapshot, bigint, bigint);
drop function herald_after(text, text[], bigint, boolean, pg_snapshot, pg_snapshot, bigint);
drop function herald_newest(text, text[], bigint, boolean);
drop function herald_channel_after(text, pg_snapshot);
