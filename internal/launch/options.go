// Package launch is ec2-new: it launches a fleet in one request with everything a fresh
// account lacks (image, key pair, security group, subnet), waits until every instance
// accepts SSH and has finished its boot script, and terminates everything it launched when
// anything goes wrong on the way.
package launch

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
)

// Options are ec2-new's arguments.
type Options struct {
	Name           string         // Name tag of every instance; generated when empty
	Num            int            // how many instances
	Min            int            // accept a fleet of at least this many when Num cannot be had; 0: Num
	Type           string         // instance type, or several, comma-separated, tried in order
	AMI            string         // al2023, ubuntu, debian or ami-…
	User           string         // login user; default: the image's
	Spot           bool           // one-time spot instances, terminated on interruption
	Subnets        []string       // subnets to try, in order
	VPC            string         // else the subnets of this VPC
	Init           string         // script run as root at boot, or the name of a file holding it
	InitOkFail     bool           // a failing Init does not fail the launch
	Gigs           int            // root volume size; 0 keeps the image's
	Tags           []string       // extra key=value tags
	TTL            *time.Duration // power off after this long; nil: never
	Shutdown       string         // what a poweroff on the instance does: ShutdownTerminate (default) or ShutdownStop
	Profile        string         // IAM instance profile name or ARN, NoProfile, or "" for NodeProfile
	Wait           time.Duration  // bound on waiting until every instance is ready
	NoWait         bool           // print the ids as soon as EC2 accepted the launch
	Private        bool           // reach instances on their private addresses
	ConnectTimeout time.Duration  // per SSH connection while waiting for the instances (0: sshx's default)
	Join           bool           // add to an existing fleet of this name

	generated bool // the name was made up by check
}

// The --shutdown choices: what a poweroff on an instance does.
const (
	ShutdownTerminate = "terminate"
	ShutdownStop      = "stop"
)

// reserved tag keys are set by ec2-new itself.
var reserved = []string{"Name", fleet.UserTag, FleetTag, LaunchTag}

// Tags ec2-new puts on every instance (besides Name and fleet.UserTag).
const (
	FleetTag  = "ec2kit:fleet"  // the fleet's name, as the Name tag
	LaunchTag = "ec2kit:launch" // unique per ec2-new run: finds what a run launched, even after a lost reply
)

// userRE is what the boot script accepts as a login user (it goes into chown unquoted).
var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)

// maxUserData is EC2's limit on user data before base64 encoding.
const maxUserData = 16 << 10

// check validates the options and fills in the derived ones: the init script read from its
// file, the tags parsed, a generated name. It touches no AWS API.
func (o *Options) check() (tags map[string]string, err error) {
	switch {
	case o.Num < 1:
		return nil, cli.Errorf(cli.ExitUsage, "--num must be at least 1")
	case o.Min < 0 || o.Min > o.Num:
		return nil, cli.Errorf(cli.ExitUsage, "--min %d: want 1 to --num (%d)", o.Min, o.Num)
	case o.Type == "":
		return nil, cli.Errorf(cli.ExitUsage, "--type is empty (instance types look like t3.micro)")
	case o.Gigs < 0:
		return nil, cli.Errorf(cli.ExitUsage, "--gigs must not be negative")
	case o.TTL != nil && *o.TTL < time.Minute:
		return nil, cli.Errorf(cli.ExitUsage, "--ttl must be at least 1m (not %s)", *o.TTL)
	case o.Shutdown != "" && o.Shutdown != ShutdownTerminate && o.Shutdown != ShutdownStop:
		return nil, cli.Errorf(cli.ExitUsage, "--shutdown %q: want terminate or stop", o.Shutdown)
	case !o.NoWait && o.Wait <= 0:
		return nil, cli.Errorf(cli.ExitUsage, "--wait must be positive (or use --no-wait)")
	case strings.ContainsAny(o.Name, "\n\t"):
		return nil, cli.Errorf(cli.ExitUsage, "bad name %q", o.Name)
	case o.AMI != "" && !strings.HasPrefix(o.AMI, "ami-") && aliases[o.AMI] == (alias{}):
		return nil, cli.Errorf(cli.ExitUsage, "--ami %q: want al2023, ubuntu, debian or an ami- id", o.AMI)
	case o.User != "" && !userRE.MatchString(o.User):
		return nil, cli.Errorf(cli.ExitUsage, "--user %q is not a user name", o.User)
	}
	for _, t := range strings.Split(o.Type, ",") {
		if !strings.Contains(t, ".") || strings.ContainsAny(t, " \t") {
			return nil, cli.Errorf(cli.ExitUsage, "--type %q is not an instance type (they look like t3.micro)", t)
		}
	}
	tags = map[string]string{}
	for _, kv := range o.Tags {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok || k == "":
			return nil, cli.Errorf(cli.ExitUsage, "--tag %q: want key=value", kv)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, cli.Errorf(cli.ExitUsage, "--tag %q: the aws: prefix is reserved by AWS", kv)
		}
		for _, r := range reserved {
			if k == r {
				return nil, cli.Errorf(cli.ExitUsage, "--tag %q: ec2-new sets %s itself", kv, r)
			}
		}
		tags[k] = v
	}
	if o.Init != "" && !strings.Contains(o.Init, "\n") {
		// A single line naming an existing file is that file; anything else is the script.
		if b, err := os.ReadFile(o.Init); err == nil {
			o.Init = string(b)
		} else if !os.IsNotExist(err) {
			return nil, cli.Errorf(cli.ExitLocal, "--init: %v", err)
		}
	}
	if o.Name == "" {
		o.Name, o.generated = "fleet-"+randomHex(3), true
	}
	return tags, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ttl is the TTL, 0 for none.
func (o *Options) ttl() time.Duration {
	if o.TTL == nil {
		return 0
	}
	return *o.TTL
}
