-- Every herald instance's LISTEN connection has a row here. NOTIFY serializes committing
-- transactions on one global lock, so writers only NOTIFY while some instance is idle and
-- waiting ("armed"); an instance that is busy reading polls instead, and re-arms when it
-- goes quiet (src/listener.rs explains why nothing can be missed at the switch).
create table herald_listeners (
    pid integer primary key,
    armed boolean not null default true,
    since timestamptz not null default now()
);

create function herald_wake() returns trigger
language plpgsql as $$
begin
    -- Empty payload: all wake-ups of one transaction fold into one, and rows of any size
    -- are read from the table, never squeezed into NOTIFY's 8000-byte payload.
    if exists (select 1 from herald_listeners where armed) then
        perform pg_notify('herald', '');
    end if;
    return null;
end;
$$;

-- Per statement, not per row: a bulk insert wakes herald once.
create trigger notifications_wake
    after insert on notifications
    for each statement execute function herald_wake();
