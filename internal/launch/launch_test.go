package launch

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"ec2kit/internal/cli"
)

func TestCheck(t *testing.T) {
	ok := Options{Num: 2, Type: "t3.micro", Wait: time.Minute, Tags: []string{"team=data", "empty="}}
	tags, err := ok.check()
	if err != nil || tags["team"] != "data" || tags["empty"] != "" || !strings.HasPrefix(ok.Name, "fleet-") {
		t.Fatalf("%v %v %q", tags, err, ok.Name)
	}
	bad := map[string]func(*Options){
		"num 0":       func(o *Options) { o.Num = 0 },
		"no type":     func(o *Options) { o.Type = "" },
		"bad type":    func(o *Options) { o.Type = "large" },
		"gigs":        func(o *Options) { o.Gigs = -1 },
		"short ttl":   func(o *Options) { o.TTL = ptr(10 * time.Second) },
		"zero ttl":    func(o *Options) { o.TTL = ptr(time.Duration(0)) },
		"shutdown":    func(o *Options) { o.Shutdown = "hibernate" },
		"no wait":     func(o *Options) { o.Wait = 0 },
		"tag no =":    func(o *Options) { o.Tags = []string{"team"} },
		"tag no key":  func(o *Options) { o.Tags = []string{"=x"} },
		"tag aws:":    func(o *Options) { o.Tags = []string{"aws:x=1"} },
		"tag Name":    func(o *Options) { o.Tags = []string{"Name=x"} },
		"tag ec2kit":  func(o *Options) { o.Tags = []string{"ec2kit:user=root"} },
		"ami alias":   func(o *Options) { o.AMI = "fedora" },
		"user quotes": func(o *Options) { o.User = "a'b" },
	}
	for name, f := range bad {
		o := Options{Num: 1, Type: "t3.micro", Wait: time.Minute}
		f(&o)
		if _, err := o.check(); cli.CodeOf(err) != cli.ExitUsage {
			t.Errorf("%s: want usage error, got %v", name, err)
		}
	}
	nw := Options{Num: 1, Type: "t3.micro", NoWait: true, AMI: "ami-0123"}
	if _, err := nw.check(); err != nil {
		t.Errorf("--no-wait needs no --wait: %v", err)
	}
}

func TestInitFromFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "setup.sh")
	os.WriteFile(f, []byte("#!/bin/sh\necho hi\n"), 0o644)
	o := Options{Num: 1, Type: "t3.micro", NoWait: true, Init: f}
	if _, err := o.check(); err != nil || o.Init != "#!/bin/sh\necho hi\n" {
		t.Fatalf("%q %v", o.Init, err)
	}
	o = Options{Num: 1, Type: "t3.micro", NoWait: true, Init: "touch /tmp/x"}
	if _, err := o.check(); err != nil || o.Init != "touch /tmp/x" {
		t.Fatalf("a script stays a script: %q %v", o.Init, err)
	}
}

func decode(t *testing.T, ud string) string {
	b, err := base64.StdEncoding.DecodeString(ud)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUserData(t *testing.T) {
	ud, err := UserData("ubuntu", "#!/usr/bin/env python3\nprint('EC2KIT_INIT')\n", 90*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s := decode(t, ud)
	for _, want := range []string{"#!/bin/bash\n", "+ 5400 ))", "shutdown -P +", ttlScript, "chown ubuntu: /mnt", "Instance Storage",
		"(cd / && /var/lib/ec2kit/init)", BootDone} {
		if !strings.Contains(s, want) {
			t.Errorf("boot script lacks %q:\n%s", want, s)
		}
	}
	if strings.Index(s, "shutdown -P") > strings.Index(s, "Instance Storage") {
		t.Error("the TTL must be set before anything that can fail")
	}
	if out, err := exec.Command("bash", "-n", "-c", s).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v %s", err, out)
	}
	plain := decode(t, must(UserData("ec2-user", "", 0)))
	if strings.Contains(plain, "shutdown") || strings.Contains(plain, "ec2kit/init") || !strings.Contains(plain, "chown ec2-user: /mnt") {
		t.Errorf("no TTL, no init:\n%s", plain)
	}
	noShebang := decode(t, must(UserData("admin", "apt-get install -y jq", 0)))
	if !strings.Contains(noShebang, "bash /var/lib/ec2kit/init") {
		t.Errorf("a script without #! runs with bash:\n%s", noShebang)
	}
	if _, err := UserData("admin", strings.Repeat("x", 20000), 0); cli.CodeOf(err) != cli.ExitUsage {
		t.Errorf("oversized init: %v", err)
	}
}

// TestBootScriptRuns runs the boot script for real, in a scratch root: the init script's
// output and status land where ec2-new looks for them.
func TestBootScriptRuns(t *testing.T) {
	root := t.TempDir()
	s := decode(t, must(UserData(currentUser(t), "echo from-init; exit 3", 0)))
	// Point the absolute paths into the scratch root (the script itself stays as shipped).
	for _, p := range []string{"/var/lib/ec2kit", "/var/log", "/mnt"} {
		os.MkdirAll(filepath.Join(root, p), 0o755)
		s = strings.ReplaceAll(s, " "+p, " "+root+p)
		s = strings.ReplaceAll(s, ">"+p, ">"+root+p)
	}
	if out, err := exec.Command("bash", "-c", s).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	done, _ := os.ReadFile(filepath.Join(root, BootDone))
	log, _ := os.ReadFile(filepath.Join(root, InitLog))
	if strings.TrimSpace(string(done)) != "3" || strings.TrimSpace(string(log)) != "from-init" {
		t.Fatalf("done %q, log %q", done, log)
	}
}

// TestTTLTimer runs the --ttl per-boot script against a recording shutdown: the OS timer is
// armed for the deadline, rounded up to whole minutes, and a deadline already past powers
// off at once (a reboot after the TTL).
func TestTTLTimer(t *testing.T) {
	s := decode(t, must(UserData("ec2-user", "", 3*time.Minute)))
	_, script, _ := strings.Cut(s, "<<'EC2KIT_TTL'\n")
	script, _, _ = strings.Cut(script, "EC2KIT_TTL\n")
	dir := t.TempDir()
	deadline := filepath.Join(dir, "deadline")
	script = strings.ReplaceAll(script, deadlineFile, deadline)
	os.WriteFile(filepath.Join(dir, "shutdown"), []byte("#!/bin/sh\necho \"$@\" >>\"$(dirname \"$0\")/calls\"\n"), 0o755)
	for _, tc := range []struct {
		left int64
		want string
	}{{90, "-P +2"}, {60, "-P +1"}, {7200, "-P +120"}, {-5, "-P now"}} {
		os.Remove(filepath.Join(dir, "calls"))
		os.WriteFile(deadline, []byte(strconv.FormatInt(time.Now().Unix()+tc.left, 10)+"\n"), 0o644)
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		if calls, _ := os.ReadFile(filepath.Join(dir, "calls")); strings.TrimSpace(string(calls)) != tc.want {
			t.Errorf("%ds left: shutdown %q, want %q", tc.left, calls, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func currentUser(t *testing.T) string {
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Skip("no id command")
	}
	return strings.TrimSpace(string(out))
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func TestRunInput(t *testing.T) {
	o := Options{Num: 50, Type: "c5d.large", Spot: true, TTL: ptr(time.Hour), Gigs: 40}
	in := runInput(o, image{ID: "ami-1", RootDevice: "/dev/xvda"}, "key", "sg-1", "dWQ=", map[string]string{"Name": "web", "b": "2", "a": "1"})
	if *in.MinCount != 50 || *in.MaxCount != 50 {
		t.Error("MinCount and MaxCount must both be the fleet size")
	}
	if in.InstanceMarketOptions == nil || in.InstanceMarketOptions.SpotOptions.SpotInstanceType != types.SpotInstanceTypeOneTime ||
		in.InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior != types.InstanceInterruptionBehaviorTerminate {
		t.Error("spot: one-time, terminate on interruption")
	}
	if in.InstanceInitiatedShutdownBehavior != types.ShutdownBehaviorTerminate {
		t.Error("power off must terminate")
	}
	if bd := in.BlockDeviceMappings; len(bd) != 1 || *bd[0].Ebs.VolumeSize != 40 || *bd[0].DeviceName != "/dev/xvda" {
		t.Error("--gigs: root volume")
	}
	if tags := in.TagSpecifications[0].Tags; len(tags) != 3 || *tags[0].Key != "Name" || *tags[1].Key != "a" {
		t.Errorf("tags sorted by key: %v", tags)
	}
	od := runInput(Options{Num: 1, Type: "t3.micro"}, image{ID: "ami-1"}, "key", "sg-1", "", nil)
	if od.InstanceMarketOptions != nil || od.InstanceInitiatedShutdownBehavior != types.ShutdownBehaviorTerminate || od.BlockDeviceMappings != nil {
		t.Error("on-demand defaults")
	}
	if st := runInput(Options{Num: 1, Type: "t3.micro", Shutdown: ShutdownStop}, image{ID: "ami-1"}, "key", "sg-1", "", nil); st.InstanceInitiatedShutdownBehavior != types.ShutdownBehaviorStop {
		t.Error("--shutdown stop")
	}
}
