#!/usr/bin/env bash
# Database time of one unread count for a user with ROWS notifications (SPEC: no count over
# the inbox), in the three states a reader can be in:
#   never_marked  - nothing read: every row unread;
#   marked        - "mark all read", then 10 new rows (the saved counts are used);
#   after_delete  - as marked, then one of their rows deleted (the saved counts cannot be
#                   trusted: the rows the mark does not cover are counted, O(unread)).
# Each reports PostgreSQL's execution time of `select herald_unread_count(user)` (EXPLAIN
# ANALYZE, best of 5 in one session after a first call) and the rows and index entries it read.
#
# usage: bench/unread.sh DATABASE_URL [ROWS]
# DATABASE_URL: a database herald has migrated. Adds ROWS + 11 rows for a new user
# (`unread-bench-<pid>`) and deletes them at the end.
set -euo pipefail
url=$1
rows=${2:-100000}
user=unread-bench-$$
q() { psql "$url" -v ON_ERROR_STOP=1 -Atq "$@"; }
trap 'q -c "delete from notifications where channel = '"'user:$user'"'" -c "delete from notification_read_marks where user_id = '"'$user'"'"' EXIT

q -c "insert into notifications (channel, title) select 'user:$user', 'n' from generate_series(1, $rows)"
# Roll up (herald does every second; this one may find herald at it and skip its turn).
for _ in $(seq 50); do
  [ "$(q -c "select herald_roll_up_counts()")" = t ] && break
  sleep 0.1
done
q -c "analyze notifications"

measure() { # NAME: best execution time of 5, and what the count read
  local name=$1 best count read_entries
  # One session: its first call compiles the functions and makes their plans, as a pooled
  # connection's first request does; the rest are what every later request pays.
  best=$(for _ in 1 2 3 4 5 6; do
      echo "explain (analyze, format json) select herald_unread_count('$user');"
    done | q | python3 -c '
import re, sys
times = [float(t) for t in re.findall(r"\"Execution Time\": ([0-9.]+)", sys.stdin.read())]
print(min(times[1:]))')
  read count read_entries < <(q -F ' ' <<SQL
begin;
select herald_unread_count('$user'),
       (select sum(pg_stat_get_xact_tuples_returned(oid)) from pg_class
        where oid = 'notifications'::regclass
           or oid in (select indexrelid from pg_index where indrelid = 'notifications'::regclass));
commit;
SQL
  )
  echo "$name: unread_count=$count db_ms=$best rows_and_index_entries_read=$read_entries"
  printf '{"case":"%s","rows":%s,"unread_count":%s,"db_ms":%s,"read":%s}\n' \
    "$name" "$rows" "$count" "$best" "$read_entries" >>"$json"
}
json=$(mktemp)
measure never_marked
q -c "insert into notification_read_marks as m (user_id, read_through, inbox_seen, inbox_deleted,
        broadcast_seen, broadcast_deleted)
      select '$user', pg_current_snapshot(), herald_channel_count('user:$user'),
             coalesce((select deleted from notification_counts where channel = 'user:$user'), 0),
             herald_channel_count('broadcast'),
             coalesce((select deleted from notification_counts where channel = 'broadcast'), 0)"
q -c "insert into notifications (channel, title) select 'user:$user', 'new' from generate_series(1, 11)"
measure marked
q -c "delete from notifications where id = (select max(id) from notifications where channel = 'user:$user')"
measure after_delete
python3 -c 'import json,sys; print(json.dumps({"scenario": "unread", "cases": [json.loads(l) for l in open(sys.argv[1])]}))' "$json"
rm -f "$json"
