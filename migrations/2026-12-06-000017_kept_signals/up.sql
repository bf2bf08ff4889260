-- Kept signals (SPEC section 12): a signal sent with `keep` is also the current value of its
-- (channel, kind) until it expires or a newer one replaces it, so a page that opens later
-- starts from where the courier is now. Every instance reads the same rows; nothing about
-- them lives in herald's memory.
create table herald_kept_signals (
    channel text not null,
    kind text not null,
    -- The `event: signal` data exactly as streams got it live. json keeps the text as sent:
    -- jsonb would reorder its keys, and refuse the \u0000 a live signal's data may carry.
    event json not null,
    -- The event's `at`. A newer value replaces an older one, never the other way round, so
    -- an older signal whose request arrives late cannot undo a newer one.
    sent_at timestamptz not null,
    -- By the database's clock, which is what reads compare it with.
    expires_at timestamptz not null,
    constraint herald_kept_signals_pkey primary key (channel, kind)
);
-- A stream's start reads each of its channels' newest values (at most 100, however many
-- kinds a channel has), and upkeep deletes the expired ones.
create index herald_kept_signals_channel_sent on herald_kept_signals (channel, sent_at);
create index herald_kept_signals_expires on herald_kept_signals (expires_at);

-- Keeps `event` as the value of (channel, kind) for `keep_secs` from now, unless a value sent
-- later is kept already. The one place the replacing rule is written: `POST /api/signals`
-- (as herald's own role) and herald_signal (as its owner) both call it. Not for writers.
create function herald_keep_signal(channel text, kind text, event json,
                                   sent_at timestamptz, keep_secs integer)
returns void
language sql as $$
    insert into herald_kept_signals as k (channel, kind, event, sent_at, expires_at)
    values ($1, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))
    on conflict on constraint herald_kept_signals_pkey do update
    set event = excluded.event, sent_at = excluded.sent_at, expires_at = excluded.expires_at
    where k.sent_at <= excluded.sent_at
$$;
revoke execute on function herald_keep_signal(text, text, json, timestamptz, integer) from public;

-- A signal sent with SQL, for server-side senders (a Django view, a cron job): the same rules
-- as `POST /api/signals`, checked here (each refusal is an `invalid_parameter_value` naming
-- the rule), and delivered by every instance's listener when the calling transaction
-- commits, not at all if it rolls back: that is how pg_notify behaves, and why it is used.
-- - `channel`: the rule of notifications_channel_valid (the channel_rule migration);
-- - `kind`: 1-64 characters, none of them a control character;
-- - `data`: any JSON (SQL null is JSON null);
-- - the event as streams get it: at most 4,096 bytes, as a request body to the API;
-- - `keep_secs`: null (not kept) or 1-86,400, as `keep` is for the API.
-- The event's `from` is null: no user sent it. Not the database role, which is no user id
-- of the app's (it could even collide with one) and no business of the browsers.
-- `at` is when this function ran (clock_timestamp, not the transaction's start), in UTC.
-- The NOTIFY carries origin 0, which is no instance's (src/hub/mod.rs), so every instance
-- delivers it. Only roles granted EXECUTE may call it (README, Deploy).
create function herald_signal(channel text, kind text, data jsonb,
                              keep_secs integer default null)
returns void
language plpgsql security definer as $$
declare
    sent timestamptz := clock_timestamp();
    event text;
begin
    if channel is null
       or channel !~ '^[^\u0001-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028-\u2029\u202f\u205f\u3000,*]{1,200}$' then
        raise exception using errcode = 'invalid_parameter_value',
            message = format('herald_signal: channel %s is not a channel name', quote_nullable(left(channel, 64))),
            hint = 'A channel name is 1-200 characters with no spaces, commas, control characters or ''*''.';
    end if;
    if kind is null or kind !~ '^[^\u0001-\u001f\u007f-\u009f]{1,64}$' then
        raise exception using errcode = 'invalid_parameter_value',
            message = format('herald_signal: kind %s is not a signal kind', quote_nullable(left(kind, 64))),
            hint = 'A kind is 1-64 characters, none of them a control character.';
    end if;
    if keep_secs is not null and keep_secs not between 1 and 86400 then
        raise exception using errcode = 'invalid_parameter_value',
            message = format('herald_signal: keep_secs %s is out of range', keep_secs),
            hint = 'keep_secs is null (not kept) or 1-86400 seconds.';
    end if;
    -- The key order and compact form of herald's own events.
    event := format('{"channel":%s,"kind":%s,"from":null,"data":%s,"at":%s}',
                    to_json(channel), to_json(kind), coalesce(data, 'null'::jsonb),
                    to_json(to_char(sent at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    -- 4 KB also keeps the NOTIFY below its 8,000 bytes.
    if octet_length(event) > 4096 then
        raise exception using errcode = 'invalid_parameter_value',
            message = format('herald_signal: the signal is %s bytes, over 4096', octet_length(event)),
            hint = 'Send less data: a signal is a small live event.';
    end if;
    if keep_secs is not null then
        perform herald_keep_signal(channel, kind, event::json, sent, keep_secs);
    end if;
    perform pg_notify('herald_signals',
                      format('{"origin":0,"channel":%s,"event":%s}', to_json(channel), event));
end;
$$;
revoke execute on function herald_signal(text, text, jsonb, integer) from public;

-- As the change_log migration's functions: run as the owner, they resolve names in herald's
-- schema only, whatever the caller's search_path. (Set here rather than in `create`: the
-- body has format() strings of its own.)
do $do$
begin
    execute format('alter function herald_signal(text, text, jsonb, integer) set search_path = pg_catalog, %I',
                   current_schema());
end;
$do$;
