#!/usr/bin/env bash
# Writers' insert throughput with herald installed and running, against the same inserts
# into copies of the table with no trigger and with a naive per-row pg_notify trigger.
#
# usage: bench/writers.sh DATABASE_URL [SECONDS] [ROUNDS]
# herald must be serving on DATABASE_URL (its listener decides when writers NOTIFY).
# Creates bench_plain and bench_naive in that database; drops them at the end.
set -euo pipefail
url=$1
secs=${2:-8}
rounds=${3:-2}

psql "$url" -v ON_ERROR_STOP=1 -q <<'SQL'
drop table if exists bench_plain, bench_naive;
create table bench_plain (like notifications including all);
create table bench_naive (like notifications including all);
create or replace function bench_naive_notify() returns trigger language plpgsql as $$
begin perform pg_notify('bench_naive', new.id::text); return null; end $$;
create trigger bench_naive_notify after insert on bench_naive
    for each row execute function bench_naive_notify();
SQL
trap 'psql "$url" -q -c "drop table if exists bench_plain, bench_naive" -c "drop function if exists bench_naive_notify()"' EXIT

dir=$(mktemp -d)
for table in bench_plain notifications bench_naive; do
  echo "insert into $table (channel, title) values ('user:' || (random() * 1000)::int, 'bench');" > "$dir/$table.sql"
done
# Rounds interleave the tables, so table growth and checkpoints fall on all of them alike.
for round in $(seq "$rounds"); do
  for clients in 8 32; do
    for table in bench_plain notifications bench_naive; do
      tps=$(pgbench -n -c "$clients" -j 2 -T "$secs" -f "$dir/$table.sql" "$url" | awk '/^tps/ {print int($3)}')
      echo "round=$round clients=$clients table=$table tps=$tps"
    done
  done
done
