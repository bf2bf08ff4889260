#!/usr/bin/env bash
# Database time of one unread count (and, where herald has them, one unseen count: SPEC
# section 12) for a user with ROWS notifications (SPEC: no count over the inbox), in the
# states a reader can be in:
#   never_marked  - nothing read: every row unread;
#   marked        - "mark all read", then 10 new rows (the saved counts are used);
#   after_delete  - as marked, then one of their rows deleted (the saved counts cannot be
#                   trusted: the rows the mark does not cover are counted, O(unread));
#   seen, archived_all - with herald_unseen_count only: 11 new rows, the bell opened (seen
#                   through now), 11 more; then everything archived and 11 more.
# Each reports PostgreSQL's execution time of `select herald_unread_count(user)` (EXPLAIN
# ANALYZE, best of 5 in one session after a first call) and the rows and index entries it read,
# and the same of `herald_unseen_count(user)` when the database has it.
#
# usage: bench/unread.sh DATABASE_URL [ROWS]
# DATABASE_URL: a database herald has migrated. Adds ROWS + 11 rows for a new user
# (`unread-bench-<pid>`) and deletes them at the end.
set -euo pipefail
url=$1
rows=${2:-100000}
user=unread-bench-$$
q() { psql "$url" -v ON_ERROR_STOP=1 -Atq "$@"; }
trap 'q -c "delete from notifications where channel = '"'user:$user'"'" -c "delete from notification_read_marks where user_id = '"'$user'"'"
  [ "${unseen:-0}" = 1 ] && q -c "delete from notification_seen_marks where user_id = '"'$user'"'" \
    -c "delete from notification_archive_marks where user_id = '"'$user'"'"' EXIT

q -c "insert into notifications (channel, title) select 'user:$user', 'n' from generate_series(1, $rows)"
# Roll up (herald does every second; this one may find herald at it and skip its turn).
for _ in $(seq 50); do
  [ "$(q -c "select herald_roll_up_counts()")" = t ] && break
  sleep 0.1
done
q -c "analyze notifications"

time_of() { # FUNCTION: best execution time of 5 calls, in one session
  # One session: its first call compiles the functions and makes their plans, as a pooled
  # connection's first request does; the rest are what every later request pays.
  for _ in 1 2 3 4 5 6; do
    echo "explain (analyze, format json) select $1('$user');"
  done | q | python3 -c '
import re, sys
times = [float(t) for t in re.findall(r"\"Execution Time\": ([0-9.]+)", sys.stdin.read())]
print(min(times[1:]))'
}

read_by() { # FUNCTION: its result, and the rows and index entries one call read
  q -F ' ' <<SQL
begin;
select $1('$user'),
       (select sum(pg_stat_get_xact_tuples_returned(oid)) from pg_class
        where oid = 'notifications'::regclass
           or oid in (select indexrelid from pg_index where indrelid = 'notifications'::regclass));
commit;
SQL
}

unseen=$(q -c "select count(*) from pg_proc where proname = 'herald_unseen_count'")
measure() { # NAME
  local name=$1 best count read_entries line
  best=$(time_of herald_unread_count)
  read -r count read_entries < <(read_by herald_unread_count)
  line="$name: unread_count=$count db_ms=$best rows_and_index_entries_read=$read_entries"
  local entry
  entry=$(printf '"case":"%s","rows":%s,"unread_count":%s,"db_ms":%s,"read":%s' \
    "$name" "$rows" "$count" "$best" "$read_entries")
  if [ "$unseen" = 1 ]; then
    best=$(time_of herald_unseen_count)
    read -r count read_entries < <(read_by herald_unseen_count)
    line="$line; unseen_count=$count db_ms=$best rows_and_index_entries_read=$read_entries"
    entry=$(printf '%s,"unseen_count":%s,"unseen_db_ms":%s,"unseen_read":%s' \
      "$entry" "$count" "$best" "$read_entries")
  fi
  echo "$line"
  echo "{$entry}" >>"$json"
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
if [ "$unseen" = 1 ]; then
  new11() { q -c "insert into notifications (channel, title) select 'user:$user', 'new' from generate_series(1, 11)"; }
  new11
  q -c "select herald_mark_seen('$user', pg_current_snapshot())"
  new11
  measure seen
  q -c "insert into notification_archive_marks (user_id, archived_through)
        values ('$user', pg_current_snapshot())"
  q -c "select herald_mark_read('$user', pg_current_snapshot())"
  new11
  measure archived_all
fi
python3 -c 'import json,sys; print(json.dumps({"scenario": "unread", "cases": [json.loads(l) for l in open(sys.argv[1])]}))' "$json"
rm -f "$json"
