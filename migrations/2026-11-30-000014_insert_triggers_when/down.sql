drop trigger notifications_wake on notifications;
drop function herald_wake_armed();
drop trigger notifications_stamp on notifications;
drop function herald_stamp_txid();

do $do$
begin
    execute format($fn$
        create function herald_stamp() returns trigger
        language plpgsql as $body$
        begin
            new.txid := pg_current_xact_id();
            if pg_sequence_last_value(%L::regclass) = 1 then
                perform pg_notify('herald', '');
            end if;
            return new;
        end;
        $body$ $fn$, format('%I.herald_armed', current_schema()));
end;
$do$;

create trigger notifications_stamp
    before insert on notifications
    for each row execute function herald_stamp();
