-- A writer's INSERT no longer enters PL/pgSQL (issue 14: the insert trigger cost writers
-- ~9% with herald stopped, `herald-bench writers`). Both of the stamp_txid migration's jobs
-- move into trigger WHEN conditions, which PostgreSQL evaluates itself:
--
-- * The txid. The column's default is already the writing transaction's id; the trigger now
--   runs only when a row arrives with another (hand-set, or restored), and stamps it as
--   before.
-- * The wake-up. One statement trigger per INSERT (or COPY), which runs only while some
--   listener is armed. Its condition is read when the statement ends, after its rows are
--   in: the transaction holds its id by then, so re-arming still waits for every transaction
--   that may have read "disarmed" (src/listener/mod.rs, "Not slowing writers down").
--
-- The sequence is named with the schema the migrations run in: a regclass constant in a
-- trigger's condition is resolved once, here, whatever a writer's search_path.

drop trigger notifications_stamp on notifications;
drop function herald_stamp();

create function herald_stamp_txid() returns trigger
language plpgsql as $$
begin
    new.txid := pg_current_xact_id();
    return new;
end;
$$;

create trigger notifications_stamp
    before insert on notifications
    for each row
    when (new.txid is distinct from pg_current_xact_id())
    execute function herald_stamp_txid();

-- Empty payload: a transaction's wake-ups fold into one, and rows of any size are read from
-- the table, never squeezed into NOTIFY's 8000 bytes.
create function herald_wake_armed() returns trigger
language plpgsql as $$
begin
    perform pg_notify('herald', '');
    return null;
end;
$$;

do $do$
begin
    execute format($sql$
        create trigger notifications_wake
            after insert on notifications
            for each statement
            when (pg_sequence_last_value(%L::regclass) = 1)
            execute function herald_wake_armed()
        $sql$, format('%I.herald_armed', current_schema()));
end;
$do$;
