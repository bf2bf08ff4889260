#!/usr/bin/env bash
# Deletes per second from `notifications`, as apps and pruning make them, with herald's
# deletion-counting triggers installed, against the same deletes on a copy of the table with
# no trigger:
#   deleters  - CLIENTS concurrent single-row DELETEs (an app deleting notifications);
#   prune     - writers inserting while `herald_prune`-style batches of 1,000 are deleted,
#               reporting both the inserts and the deletes per second.
#
# usage: bench/deletes.sh DATABASE_URL [SECONDS] [CLIENTS]
# DATABASE_URL: a database herald has migrated (herald need not run). Creates bench_plain
# and its rows, adds rows to notifications on channels `bench:<n>`, and removes both at
# the end.
set -euo pipefail
url=$1
secs=${2:-8}
clients=${3:-4}
rows=1000000
q() { psql "$url" -v ON_ERROR_STOP=1 -Atq "$@"; }
cleanup() {
  q -c "drop table if exists bench_plain" -c "delete from notifications where channel like 'bench:%'" >/dev/null
}
trap cleanup EXIT
dir=$(mktemp -d)

fill() { # TABLE: ROWS rows over 1,000 channels
  q -c "insert into $1 (channel, title) select 'bench:' || (i % 1000), 'bench' from generate_series(1, $rows) i"
  q -c "analyze $1"
}
q -c "drop table if exists bench_plain" -c "create table bench_plain (like notifications including all)"
fill bench_plain
fill notifications
# Rows to delete are picked among the bench rows by id, each at most once (a sequence).
q -c "drop sequence if exists bench_pick" -c "create sequence bench_pick"

for table in bench_plain notifications; do
  low=$(q -c "select min(id) from $table where channel like 'bench:%'")
  q -c "select setval('bench_pick', $low)" >/dev/null
  # (A subquery: nextval() in the WHERE clause itself would be evaluated for every row.)
  echo "delete from $table where id = (select nextval('bench_pick'));" >"$dir/delete.sql"
  tps=$(pgbench -n -c "$clients" -j 2 -T "$secs" -f "$dir/delete.sql" "$url" 2>/dev/null |
        awk '/^tps/ {print int($3)}')
  echo "{\"case\": \"deleters\", \"table\": \"$table\", \"clients\": $clients, \"deletes_per_sec\": $tps}"
done

# Prune while writers insert: each prune transaction deletes the oldest 1,000 bench rows
# (the writers' rows have another title, and are not pruned).
for table in bench_plain notifications; do
  cat >"$dir/prune.sql" <<SQL
delete from $table where id in (select id from $table where title = 'bench'
                                order by id limit 1000 for update skip locked);
SQL
  echo "insert into $table (channel, title) values ('bench:w' || (random() * 1000)::int, 'writer');" >"$dir/insert.sql"
  before=$(q -c "select count(*) from $table where title = 'bench'")
  pgbench -n -c 1 -T "$secs" -f "$dir/prune.sql" "$url" >/dev/null 2>&1 &
  prune=$!
  inserts=$(pgbench -n -c 8 -j 2 -T "$secs" -f "$dir/insert.sql" "$url" 2>/dev/null |
            awk '/^tps/ {print int($3)}')
  wait "$prune"
  after=$(q -c "select count(*) from $table where title = 'bench'")
  [ "$after" -gt 0 ] || echo "deletes: the prune ran out of rows; the rate below is a floor" >&2
  echo "{\"case\": \"prune_while_inserting\", \"table\": \"$table\", \"writers\": 8, \"inserts_per_sec\": $inserts, \"deletes_per_sec\": $(( (before - after) / secs ))}"
done
q -c "drop sequence bench_pick"
