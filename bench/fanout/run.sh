#!/usr/bin/env bash
# Fan-out benchmark: `--cmd true` and a 100 MB push on 10, 50 and 200 hosts, with ec2kit and
# with parallel-ssh/parallel-scp (pssh), pdsh/pdcp and clush, side by side. The hosts are
# plain sshd processes on 127.2.0.x:22, each with its own /mnt (a bind mount), inside a
# private network namespace: no packet leaves the machine. Needs root.
#   bench/fanout/run.sh [SIZES...]      (default: 10 50 200)
# Every tool gets a fan-out equal to the host count (parallel-ssh -p N, pdsh -f N, clush -f N,
# ec2kit -parallel N). Root's login files are blanked inside the bench's mount namespace, so
# every login is that of a fresh host rather than of this machine's (a pyenv .bashrc here
# cost 0.3 s of CPU per login, the same for every tool, and drowned what is measured).
# Prints the "fan-out" table of bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${FANBENCH_INNER:-}" != 1 ]; then
  exec env FANBENCH_INNER=1 unshare --net --mount --propagation private -- "$0" "$@"
fi
ip link set lo up
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
head -c $((100 << 20)) /dev/urandom > "$w/payload"
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
sleep 2

sshopts="-i $w/key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
export PDSH_SSH_ARGS_APPEND="$sshopts"
# clush reads its ssh options from its configuration.
mkdir -p "$w/clush"
printf '[Main]\nfanout: 256\nconnect_timeout: 30\ncommand_timeout: 0\nssh_options: %s\nscp_options: %s\n' "$sshopts" "$sshopts" > "$w/clush/clush.conf"
export CLUSTERSHELL_CFGDIR="$w/clush"

time_it() { # prints wall seconds of "$@", or FAIL (also past FANBENCH_LIMIT seconds)
  local t0 t1
  t0=$(date +%s.%N)
  if timeout "${FANBENCH_LIMIT:-1200}" "$@" >/dev/null 2>"$w/err"; then t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l | xargs printf '%.2f'
  else echo FAIL; tail -3 "$w/err" >&2; fi
}
clean() { rm -rf "$w"/mnt/*/payload; sync; }

load=$(cut -d' ' -f1 /proc/loadavg)
results=()
for n in "${sizes[@]}"; do
  head -n "$n" "$w/all" > "$w/hosts"
  list=$(paste -sd, "$w/hosts")
  ours=("$w/driver" -hosts "$w/hosts" -key "$w/key" -known-hosts "$w/known_hosts" -parallel "$n")
  r=("$n")
  r+=("$(time_it "${ours[@]}" -cmd true)")
  r+=("$(time_it parallel-ssh -h "$w/hosts" -p "$n" -t 0 -l root -x "$sshopts" true)")
  r+=("$(time_it pdsh -R ssh -f "$n" -l root -w "^$w/hosts" true)")
  r+=("$(time_it clush -f "$n" -l root -w "$list" true)")
  clean; r+=("$(time_it "${ours[@]}" -push "$w/payload" -dest /mnt/)")
  clean; r+=("$(time_it parallel-scp -h "$w/hosts" -p "$n" -t 0 -l root -x "$sshopts" "$w/payload" /mnt/)")
  clean; r+=("$(time_it pdcp -R ssh -f "$n" -l root -w "^$w/hosts" "$w/payload" /mnt/)")
  clean; r+=("$(time_it clush -f "$n" -l root -w "$list" --copy "$w/payload" --dest /mnt/)")
  clean
  echo "${r[*]}" >&2
  results+=("${r[*]}")
done

ratio() { # ours vs the fastest other: "x.xx"
  python3 -c 'import sys
v=[float(x) for x in sys.argv[2:] if x!="FAIL"]
o=sys.argv[1]
print("n/a" if o=="FAIL" or not v else "%.2fx" % (min(v)/float(o)))' "$@"
}
{
  echo
  echo "## fan-out"
  echo
  echo "\`bench/fanout/run.sh ${sizes[*]}\` on $(nproc) cores, $(date -u +%Y-%m-%d), load average $load at the start. Wall seconds; hosts are plain"
  echo "OpenSSH sshd on loopback in a private netns. ec2kit is the ec2-ssh/ec2-scp code path"
  echo "(bench/fanout/driver: internal/fanout + internal/transfer without the EC2 lookup). Speed-up ="
  echo "fastest other tool / ec2kit (above 1 means ec2kit is faster)."
  echo
  echo "| hosts | op | ec2kit | parallel-ssh | pdsh | clush | speed-up |"
  echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  for line in "${results[@]}"; do
    set -- $line
    echo "| $1 | \`--cmd true\` | $2 | $3 | $4 | $5 | $(ratio $2 $3 $4 $5) |"
    echo "| $1 | push 100 MB | $6 | $7 | $8 | $9 | $(ratio $6 $7 $8 $9) |"
  done
}
