#!/usr/bin/env bash
# Fan-out benchmark: `--cmd true` and a push of one file on 10, 50 and 200 hosts (or the
# sizes given, up to 1000), with ec2kit and with parallel-ssh/parallel-scp (pssh), pdsh/pdcp
# and clush, side by side. The hosts are plain sshd processes on 127.2.x.y:22, each with its
# own /mnt (a bind mount), inside a private network namespace: no packet leaves the machine.
# Needs root.
#   bench/fanout/run.sh [SIZES...]      (default: 10 50 200)
# The pushed file is 100 MB up to 200 hosts and 10 MB beyond (1000 x 100 MB would not fit the
# disk); every tool's copies are deleted before the next tool's push. Beside each time the
# table gives the peak of the machine's memory in use (MemTotal - MemAvailable, sampled every
# 0.2 s) above what it was before the command: the hosts' sshd children and the tool's
# processes, and anything else the machine ran meanwhile.
# Every tool gets a fan-out equal to the host count (parallel-ssh -p N, pdsh -f N, clush -f N,
# ec2kit -parallel N). Root's login files are blanked inside the bench's mount namespace, so
# every login is that of a fresh host rather than of this machine's (a pyenv .bashrc here
# cost 0.3 s of CPU per login, the same for every tool, and drowned what is measured).
# Prints the "fan-out" table of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${FANBENCH_INNER:-}" != 1 ]; then
  # The tools compared (Debian: pssh, pdsh, clustershell) and bc, installed when missing.
  command -v parallel-ssh >/dev/null && command -v pdsh >/dev/null && command -v clush >/dev/null && command -v bc >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pssh pdsh clustershell bc >/dev/null; }
  exec env FANBENCH_INNER=1 unshare --net --mount --propagation private -- "$0" "$@"
fi
ip link set lo up
# A tool holds a few descriptors per host (pdsh: an ssh child's pipes) and 1000 hosts pass 1024.
ulimit -n "$(ulimit -Hn)"
for f in "$HOME/.bashrc" "$HOME/.profile" "$HOME/.bash_profile"; do
  if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi
done
sizes=("${@:-10}")
[ $# -gt 0 ] || sizes=(10 50 200)
max=${sizes[-1]}
for s in "${sizes[@]}"; do [ "$s" -gt "$max" ] && max=$s; done

w=$(mktemp -d /var/tmp/fanbench.XXXXXX)
trap 'kill $(cat $w/pids 2>/dev/null) 2>/dev/null; sleep 0.5; rm -rf "$w"' EXIT
go build -o "$w/driver" ./bench/fanout/driver
ssh-keygen -q -t ed25519 -N '' -f "$w/key"
ssh-keygen -q -t ed25519 -N '' -f "$w/hostkey"
cp "$w/key.pub" "$w/authorized_keys"
mkdir -p /run/sshd
head -c $((100 << 20)) /dev/urandom > "$w/payload100"
head -c $((10 << 20)) "$w/payload100" > "$w/payload10"
mem_used() { awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 } END { printf "%d", (t - a) / 1024 }' /proc/meminfo; }
mem0=$(mem_used)
: > "$w/pids"
for i in $(seq 1 "$max"); do
  a=127.2.$((i / 250)).$((i % 250 + 1))
  mkdir -p "$w/mnt/$i"
  cat > "$w/sshd_$i" <<CONF
ListenAddress $a:22
HostKey $w/hostkey
AuthorizedKeysFile $w/authorized_keys
StrictModes no
UsePAM no
PidFile none
PermitRootLogin yes
PasswordAuthentication no
MaxStartups 1000
LogLevel ERROR
Subsystem sftp internal-sftp
CONF
  # Each host sees its own /mnt, so pushes to :/mnt/ land in separate directories.
  unshare --mount --propagation private sh -c "mount --bind $w/mnt/$i /mnt && exec /usr/sbin/sshd -D -f $w/sshd_$i" &
  echo $! >> "$w/pids"
  echo "$a" >> "$w/all"
  echo "$a $(cut -d' ' -f1-2 "$w/hostkey.pub")" >> "$w/known_hosts"
done
# Every sshd listening, however long 1000 of them take to start.
for _ in $(seq 300); do
  [ "$(ss -Hltn | grep -c ':22 ')" -ge "$max" ] && break
  sleep 1
done
hostmem=$(( $(mem_used) - mem0 ))

sshopts="-i $w/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
export PDSH_SSH_ARGS_APPEND="$sshopts"
# clush reads its ssh options from its configuration.
mkdir -p "$w/clush"
printf '[Main]\nfanout: 256\nconnect_timeout: 30\ncommand_timeout: 0\nssh_options: %s\nscp_options: %s\n' "$sshopts" "$sshopts" > "$w/clush/clush.conf"
export CLUSTERSHELL_CFGDIR="$w/clush"

time_it() { # prints "SECONDS/PEAK_MiB" of "$@", or FAIL/PEAK_MiB (also past FANBENCH_LIMIT seconds)
  local t0 t1 m0 t sampler
  m0=$(mem_used)
  (while :; do mem_used; echo; sleep 0.2; done) > "$w/mem" &
  sampler=$!
  t0=$(date +%s.%N)
  if timeout "${FANBENCH_LIMIT:-1200}" "$@" >/dev/null 2>"$w/err"; then t1=$(date +%s.%N); t=$(echo "$t1 - $t0" | bc -l | xargs printf '%.2f')
  else t=FAIL; tail -3 "$w/err" >&2; fi
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  echo "$t/$(( $(sort -n "$w/mem" | tail -1) - m0 ))"
}
clean() { rm -rf "$w"/mnt/*/payload*; sync; }

load=$(cut -d' ' -f1 /proc/loadavg)
free0=$(awk '/^MemAvailable:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
results=()
for n in "${sizes[@]}"; do
  head -n "$n" "$w/all" > "$w/hosts"
  list=$(paste -sd, "$w/hosts")
  ours=("$w/driver" -hosts "$w/hosts" -key "$w/key" -known-hosts "$w/known_hosts" -parallel "$n")
  mb=100
  [ "$n" -le 200 ] || mb=10
  payload=$w/payload$mb
  r=("$n" "$mb")
  r+=("$(time_it "${ours[@]}" -cmd true)")
  r+=("$(time_it parallel-ssh -h "$w/hosts" -p "$n" -t 0 -l root -x "$sshopts" true)")
  r+=("$(time_it pdsh -R ssh -f "$n" -l root -w "^$w/hosts" true)")
  r+=("$(time_it clush -f "$n" -l root -w "$list" true)")
  clean; r+=("$(time_it "${ours[@]}" -push "$payload" -dest /mnt/)")
  clean; r+=("$(time_it parallel-scp -h "$w/hosts" -p "$n" -t 0 -l root -x "$sshopts" "$payload" /mnt/)")
  clean; r+=("$(time_it pdcp -R ssh -f "$n" -l root -w "^$w/hosts" "$payload" /mnt/)")
  clean; r+=("$(time_it clush -f "$n" -l root -w "$list" --copy "$payload" --dest /mnt/)")
  clean
  echo "${r[*]}" >&2
  results+=("${r[*]}")
done

ratio() { # ours vs the fastest other: "x.xx"
  python3 -c 'import sys
t=[x.split("/")[0] for x in sys.argv[1:]]
v=[float(x) for x in t[1:] if x!="FAIL"]
print("n/a" if t[0]=="FAIL" or not v else "%.2fx" % (min(v)/float(t[0])))' "$@"
}
cell() { # "SECONDS/MiB" -> "SECONDS (G.G GB)"
  echo "$1" | awk -F/ '{ printf "%s (%.1f GB)", $1, $2 / 1024 }'
}
{
  echo
  echo "## fan-out"
  echo
  echo "\`bench/fanout/run.sh ${sizes[*]}\` on $(nproc) cores (\`nproc\`), $(date -u +%Y-%m-%d), load average $load at the start and"
  echo "$(cut -d' ' -f1 /proc/loadavg) at the end; $free0 GB of memory available at the start. Wall seconds, and in brackets the peak"
  echo "memory in use above that before the command; hosts are plain OpenSSH sshd on loopback in a"
  echo "private netns, $max of them idle took $(awk -v m="$hostmem" 'BEGIN { printf "%.1f", m / 1024 }') GB. ec2kit is the ec2-ssh/ec2-scp code path"
  echo "(bench/fanout/driver: internal/fanout + internal/transfer without the EC2 lookup). Speed-up ="
  echo "fastest other tool / ec2kit (above 1 means ec2kit is faster)."
  echo
  echo "| hosts | op | ec2kit | parallel-ssh | pdsh | clush | speed-up |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  for line in "${results[@]}"; do
    set -- $line
    echo "| $1 | \`--cmd true\` | $(cell $3) | $(cell $4) | $(cell $5) | $(cell $6) | $(ratio $3 $4 $5 $6) |"
    echo "| $1 | push $2 MB | $(cell $7) | $(cell $8) | $(cell $9) | $(cell ${10}) | $(ratio $7 $8 $9 ${10}) |"
  done
}
