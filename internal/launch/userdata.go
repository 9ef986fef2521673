package launch

import (
	"bytes"
	"encoding/base64"
	"strings"
	"text/template"
	"time"

	"ec2kit/internal/cli"
)

// Where the boot script leaves its traces on the instance.
const (
	// BootDone holds the --init script's exit status once the boot script has finished:
	// an instance is ready when this file exists.
	BootDone = "/var/lib/ec2kit/boot-done"
	// InitLog is the --init script's output.
	InitLog = "/var/log/ec2kit-init.log"
	// deadlineFile holds the --ttl deadline, in seconds since the epoch.
	deadlineFile = "/var/lib/ec2kit/deadline"
	// ttlScript arms the --ttl timer, on every boot.
	ttlScript = "/var/lib/cloud/scripts/per-boot/ec2kit-ttl"
)

// bootScript is the user data of every instance. The TTL comes first so that a failure
// later on cannot keep a forgotten instance alive; the boot never stops at an error, since
// the instance is only ready when BootDone exists.
var bootScript = template.Must(template.New("boot").Parse(`#!/bin/bash
# ec2kit boot script: power-off timer, /mnt, then the --init script.
mkdir -p /var/lib/ec2kit
{{- if .TTLSeconds}}
# --ttl: power off (the instance then terminates) {{.TTLSeconds}}s after the first boot, by
# the OS's own shutdown timer, which no killed process disarms. The deadline is absolute and
# cloud-init runs per-boot scripts on every boot, so a reboot arms it again.
[ -e {{.DeadlineFile}} ] || echo $(( $(date +%s) + {{.TTLSeconds}} )) >{{.DeadlineFile}}
mkdir -p /var/lib/cloud/scripts/per-boot
cat >{{.TTLScript}} <<'EC2KIT_TTL'
#!/bin/sh
# ec2kit --ttl: arm the power-off timer for the deadline in {{.DeadlineFile}}.
left=$(( $(cat {{.DeadlineFile}}) - $(date +%s) ))
[ "$left" -gt 0 ] || exec shutdown -P now
# shutdown counts in minutes: round up, never early.
if ! shutdown -P +$(( (left + 59) / 60 )); then
  (sleep "$left"; poweroff) </dev/null >/dev/null 2>&1 & # no OS timer: the next best thing
fi
EC2KIT_TTL
chmod 755 {{.TTLScript}}
{{.TTLScript}} </dev/null >>/var/log/ec2kit-ttl.log 2>&1
{{- end}}
# Instance-store NVMe disks (EBS disks have another model name): a RAID0 of all of them when
# there are several and mdadm is there, else the first, formatted and mounted on /mnt.
disks=()
for m in /sys/block/nvme*n1/device/model; do
  [ -e "$m" ] || continue
  case "$(cat "$m")" in *"Instance Storage"*) b=${m#/sys/block/}; disks+=("/dev/${b%%/*}") ;; esac
done
if [ ${#disks[@]} -gt 0 ] && ! mountpoint -q /mnt; then
  dev=${disks[0]}
  if [ ${#disks[@]} -gt 1 ] && command -v mdadm >/dev/null; then
    mdadm --create /dev/md0 --run --level=0 --raid-devices=${#disks[@]} "${disks[@]}" && dev=/dev/md0
  fi
  mkdir -p /mnt
  mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 "$dev" &&
    mount -o noatime "$dev" /mnt &&
    echo "$dev /mnt ext4 noatime,nofail 0 2" >>/etc/fstab
fi
# /mnt belongs to the login user on every instance type.
mkdir -p /mnt
chown {{.User}}: /mnt
status=0
{{- if .Init}}
base64 -d >/var/lib/ec2kit/init <<'EC2KIT_INIT'
{{.Init}}
EC2KIT_INIT
chmod 755 /var/lib/ec2kit/init
(cd / && {{if .Shebang}}{{else}}bash {{end}}/var/lib/ec2kit/init) >{{.Log}} 2>&1
status=$?
{{- end}}
echo $status >{{.Done}}.tmp && mv {{.Done}}.tmp {{.Done}}
`))

// UserData returns the boot script for a login user, an --init script and a TTL, base64
// encoded as RunInstances wants it.
func UserData(user, init string, ttl time.Duration) (string, error) {
	var b bytes.Buffer
	data := map[string]any{
		"User":         user,
		"TTLSeconds":   int64(ttl.Round(time.Second) / time.Second),
		"DeadlineFile": deadlineFile,
		"TTLScript":    ttlScript,
		"Shebang":      strings.HasPrefix(init, "#!"),
		"Log":          InitLog,
		"Done":         BootDone,
		"Init":         "",
	}
	if init != "" {
		data["Init"] = wrap(base64.StdEncoding.EncodeToString([]byte(init)), 76)
	}
	if err := bootScript.Execute(&b, data); err != nil {
		return "", err
	}
	if b.Len() > maxUserData {
		return "", cli.Errorf(cli.ExitUsage, "--init script too large: the boot script would be %d bytes, EC2 allows %d", b.Len(), maxUserData)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes()), nil
}

func wrap(s string, n int) string {
	var lines []string
	for len(s) > n {
		lines = append(lines, s[:n])
		s = s[n:]
	}
	return strings.Join(append(lines, s), "\n")
}
