#!/bin/bash
# Benchmark countpass against the tools users would otherwise use, on the same generated
# taxi-like CSV: from page cache, then over S3 (versitygw on loopback, in a private network
# namespace: no packet leaves the machine). Prints a Markdown section for bench/RESULTS.md.
#
#   bench/countpass/run.sh [SIZE_MB]        (default 1024; needs root for the namespace)
#
# Needs: go, hyperfine, pypy3, mawk, aws (CLI), versitygw (~/.cache/ec2kit/bin), and
# optionally DuckDB in ~/.cache/ec2kit/duckdb-venv (pip install duckdb).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
size_mb=${1:-1024}
vgw=${VERSITYGW:-$HOME/.cache/ec2kit/bin/versitygw}
duck=$HOME/.cache/ec2kit/duckdb-venv/bin/python

if [ "${IN_NETNS:-}" = "" ]; then
	exec unshare --net env IN_NETNS=1 "$0" "$@"
fi
ip link set lo up

tmp=$(mktemp -d /tmp/countpass-bench.XXXXXX)
trap 'kill ${vgw_pid:-} ${spin_pid:-} 2>/dev/null || true; rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/countpass" ./cmd/countpass && go run ./bench/countpass/gen -size $((size_mb << 20)) >"$tmp/data.csv")
data=$tmp/data.csv
bytes=$(stat -c %s "$data")
cat "$data" >/dev/null # into the page cache
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
export LC_ALL=C

hf() { # name, runs, command: time it with hyperfine, remember the mean
	hyperfine -N --style none --warmup 1 --runs "$2" --export-json "$tmp/h.json" -- "$3" >&2 ||
		hyperfine --style none --warmup 1 --runs "$2" --export-json "$tmp/h.json" -- "$3" >&2
	mean=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$tmp/h.json")
	names+=("$1"); means+=("$mean"); cmds+=("$3")
}
names=(); means=(); cmds=()

cp=$tmp/countpass
hf "countpass, 1 core" 5 "taskset -c 0 env GOMAXPROCS=1 $cp $data"
# The machines here run with the other core (a hyperthread sibling on EC2) busy: measure
# the one-core row again with a spinning loop on CPU 1.
taskset -c 1 sh -c 'while :; do :; done' &
spin_pid=$!
hf "countpass, 1 core, sibling busy" 5 "taskset -c 0 env GOMAXPROCS=1 $cp $data"
kill $spin_pid
spin_pid=
hf "countpass, $(nproc) cores" 5 "$cp $data"
hf "cat > /dev/null" 5 "sh -c 'cat $data > /dev/null'"
hf "cut -f1-5 | pypy3 (original)" 2 "sh -c 'cut -d, -f1-5 $data | pypy3 $here/count.py'"
hf "mawk" 2 "mawk -F, 'NR>1{c[\$4]++} END{for(k in c) print k\",\"c[k]}' $data"
hf "cut -f4 | sort | uniq -c" 1 "sh -c 'tail -n +2 $data | cut -d, -f4 | sort | uniq -c'"
if [ -x "$duck" ]; then
	hf "DuckDB read_csv" 2 "$duck -c \"import duckdb; print(duckdb.sql(\\\"select passenger_count, count(*) from read_csv('$data', header=true, all_varchar=true, quote='', escape='') group by 1\\\").fetchall())\""
fi

# The answers agree (the reference is cut|sort|uniq, the kernel's fuzzing oracle aside).
diff <($cp "$data") <(cut -d, -f1-5 "$data" | pypy3 "$here/count.py") >&2

# Over S3: one object, versitygw on 127.0.0.1.
mkdir -p "$tmp/vgw/meta" "$tmp/vgw/data"
ROOT_ACCESS_KEY=bench ROOT_SECRET_KEY=benchsecret "$vgw" --port 127.0.0.1:7171 posix --sidecar "$tmp/vgw/meta" "$tmp/vgw/data" >"$tmp/vgw.log" 2>&1 &
vgw_pid=$!
export AWS_ENDPOINT_URL_S3=http://127.0.0.1:7171 AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret \
	AWS_REGION=us-east-1 AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required \
	AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/7171) 2>/dev/null && break; sleep 0.1; done
aws s3 mb s3://bench >&2
aws s3 cp --quiet "$data" "s3://bench/trip data/yellow_tripdata_bench.csv" >&2
cat "$tmp/vgw/data/bench/trip data/yellow_tripdata_bench.csv" >/dev/null
s3_first=${#names[@]}
key="trip data/yellow_tripdata_bench.csv"
echo "$key" >"$tmp/key"
hf "S3: countpass --keys" 5 "sh -c '$cp --keys --src s3://bench --results $tmp/results < $tmp/key'"
hf "S3: aws s3 cp - > /dev/null" 2 "sh -c 'aws s3 cp \"s3://bench/$key\" - > /dev/null'"
hf "S3: aws s3 cp - | cut | pypy3 (original)" 2 "sh -c 'aws s3 cp \"s3://bench/$key\" - | cut -d, -f1-5 | pypy3 $here/count.py'"
cmp "$tmp/results/$key" <($cp "$data") >&2

row() { # index, baseline index
	python3 - "$bytes" "${means[$1]}" "${means[$2]}" "${names[$1]}" "${cmds[$1]}" "$tmp" <<'PY'
import sys
b, m, base, name, cmd, tmp = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
cmd = cmd.replace(tmp + "/", "").replace("/root/", "~/")
esc = lambda s: s.replace("|", "\\|")  # a pipe inside a cell would end it
print("| %s | %.2f | %.0f | %.1fx | `%s` |" % (esc(name), m, b / m / 1e6, base / m, esc(cmd)))
PY
}
orig=4
s3orig=$((s3_first + 2))
echo "## countpass"
echo
echo "$(date -u +%Y-%m-%d), \`bench/countpass/run.sh $size_mb\`: $((bytes >> 20)) MiB of generated taxi CSV (2015 header, ~$((bytes / $(wc -l <"$data"))) bytes/row), \`nproc\` = $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs). Load average before / after: $load_before / $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared: a load above \`nproc\` slows every row). Mean of hyperfine runs; ratio = original pipeline's time / this one's."
echo
echo "| from page cache | seconds | MB/s | vs original | command |"
echo "| --- | ---: | ---: | ---: | --- |"
for i in $(seq 0 $((s3_first - 1))); do row "$i" "$orig"; done
echo
echo "| over S3 (versitygw, loopback) | seconds | MB/s | vs original | command |"
echo "| --- | ---: | ---: | ---: | --- |"
for i in $(seq "$s3_first" $((${#names[@]} - 1))); do row "$i" "$s3orig"; done
