drop function herald_signal(text, text, jsonb, integer);
drop function herald_keep_signal(text, text, json, timestamptz, integer);
drop table herald_kept_signals;
