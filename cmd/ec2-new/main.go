// Command ec2-new launches a fleet of instances and waits until each accepts SSH.
package main

import (
	"context"
	"time"

	"ec2kit/internal/cli"
	"ec2kit/internal/launch"
)

type args struct {
	Name     string         `arg:"positional" help:"Name tag of every instance (also the ec2kit:fleet tag); generated and printed on stderr when omitted"`
	Num      int            `arg:"-n,--num" default:"1" help:"number of instances"`
	Min      int            `arg:"--min" placeholder:"M" help:"when no pool has --num instances, accept a fleet of at least M [default: --num]"`
	Type     string         `arg:"-t,--type,required" help:"instance type, for example t3.micro or i3en.2xlarge; several, comma-separated (c5d.large,m5d.large), are tried in order when one has no capacity in any subnet"`
	AMI      string         `arg:"--ami" default:"al2023" help:"image: al2023, ubuntu (24.04), debian (12), or an ami- id"`
	User     string         `arg:"--user" help:"login user recorded for the instances [default: the image's: ec2-user, ubuntu, admin]"`
	Spot     bool           `arg:"--spot" help:"one-time spot instances, terminated on interruption"`
	Subnet   []string       `arg:"--subnet,separate,env:EC2KIT_SUBNET" help:"subnet(s) to launch in, tried in order when one lacks capacity [default: the default VPC's]"`
	VPC      string         `arg:"--vpc,env:EC2KIT_VPC" help:"launch in this VPC's subnets"`
	Init     string         `arg:"--init" help:"script (or file holding it) run as root at boot; ec2-new waits until it has finished, and fails (exit 1, fleet terminated) when it fails"`
	InitOK   bool           `arg:"--init-ok-fail" help:"a failing --init script is only a warning"`
	Gigs     int            `arg:"--gigs" help:"root volume size in GiB [default: the image's]"`
	Tag      []string       `arg:"--tag,separate" placeholder:"KEY=VALUE" help:"extra tag (repeatable)"`
	TTL      *time.Duration `arg:"--ttl" help:"the instances power off after this long (at least 1m, rounded up to whole minutes; kept across reboots), for example 2h"`
	Shutdown string         `arg:"--shutdown" default:"terminate" placeholder:"terminate|stop" help:"what a poweroff on an instance does (--ttl, or sudo poweroff)"`
	Join     bool           `arg:"--join" help:"add the instances to an existing fleet of NAME (refused otherwise)"`
	Profile  string         `arg:"--profile" placeholder:"NAME|ARN|none" help:"IAM instance profile of the instances, or none [default: ec2kit-node, read-only S3, made once]"`
	Wait     time.Duration  `arg:"--wait" default:"5m" help:"how long to wait until every instance is ready"`
	NoWait   bool           `arg:"--no-wait" help:"print the ids as soon as EC2 accepts the launch"`
	Private  bool           `arg:"--private" help:"reach the instances on their private addresses"`
	Timeout  time.Duration  `arg:"--connect-timeout" default:"10s" placeholder:"DURATION" help:"limit for TCP connect + SSH handshake + auth while waiting for the instances"`
	cli.VersionFlag
}

const examples = `  ids=$(ec2-new --num 3 --type t3.micro)        # name generated, printed on stderr
  ec2-new web --num 12 --type i3en.2xlarge --spot --ttl 3h
  ec2-new --type c5d.large --ami ubuntu --gigs 50 --tag team=data --init setup.sh

Works in a fresh account: the key pair ec2kit-ACCOUNT-REGION is made once (private key in
$EC2KIT_HOME/keys, mode 0600), the security group "ec2kit" (SSH in) is ensured in the VPC,
and the default VPC's subnets are used unless --subnet/--vpc (or EC2KIT_SUBNET/EC2KIT_VPC)
say otherwise. The whole fleet is one RunInstances request.
Instance-store NVMe disks are formatted and mounted on /mnt; /mnt belongs to the login user.
Ids print on stdout, one per line, once every instance accepts SSH (host keys recorded in
$EC2KIT_HOME/known_hosts by instance id) and has finished its boot script. On any error,
timeout, failed --init or Ctrl-C before that, every instance launched is terminated.
A poweroff on an instance terminates it (--shutdown stop keeps it, stopped). --num is checked
against the account's vCPU quota (or 1000 when it cannot be read) before anything is launched.
The instances get the instance profile ec2kit-node (IAM role of that name, trusted by EC2,
read-only S3), which ec2-new makes the first time; --profile names another or none.
Tags: Name, ec2kit:fleet (the name), ec2kit:user (login user), ec2kit:launch (one per run).`

func main() {
	var a args
	cli.Main(&a, "ec2-new: launch N instances and wait until each accepts SSH", examples, func(ctx context.Context) error {
		return launch.Run(ctx, launch.Options{Name: a.Name, Num: a.Num, Min: a.Min, Type: a.Type, AMI: a.AMI, User: a.User, Spot: a.Spot,
			Subnets: a.Subnet, VPC: a.VPC, Init: a.Init, InitOkFail: a.InitOK, Gigs: a.Gigs, Tags: a.Tag, TTL: a.TTL,
			Shutdown: a.Shutdown, Profile: a.Profile, Wait: a.Wait, NoWait: a.NoWait, Private: a.Private, ConnectTimeout: a.Timeout, Join: a.Join})
	})
}
