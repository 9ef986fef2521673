// Package localcloud runs the local cloud: moto (EC2, IAM, SSM, STS), versitygw (S3), a
// pricing API server and the host watcher, all inside a private network namespace that has
// only a loopback interface, kept running by a supervisor (`localcloud serve`).
package localcloud

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"ec2kit/internal/cli"
)

// Loopback endpoints inside the namespace.
const (
	host        = "127.0.0.1"
	motoPort    = "5000"
	s3Port      = "7070"
	pricingPort = "5080"
	region      = "us-east-1"
	// The cloud's only credentials: moto accepts any, versitygw's root user has these.
	accessKey = "EC2KITLOCALACCESSKEY"
	secretKey = "ec2kit-local-secret-key"
)

// Cloud names one local cloud: its network namespace and state directories. Tests of the
// failure cases use other names so they never disturb the cloud the other tests run on.
type Cloud struct {
	Name string
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

func (c Cloud) check() error {
	if !validName.MatchString(c.Name) {
		return cli.Errorf(cli.ExitUsage, "bad cloud name %q: use lower-case letters, digits and dashes", c.Name)
	}
	return nil
}

// NetNS is the network namespace's path (see ip-netns(8)).
func (c Cloud) NetNS() string { return "/run/netns/" + c.Name }

// RunDir holds the supervisor's pid, logs, control socket and the environment file.
func (c Cloud) RunDir() string { return "/run/" + c.Name + "-localcloud" }

// DiskDir holds data on real disk: S3 objects and each instance's upper layer and /mnt.
func (c Cloud) DiskDir() string { return "/var/tmp/" + c.Name + "-localcloud" }

// hostKeyFile is the public host key of an instance's sshd, for clients to pin:
// $EC2KIT_LOCALCLOUD/hostkeys/<instance-id>.pub.
func (c Cloud) hostKeyFile(id string) string { return filepath.Join(c.RunDir(), "hostkeys", id+".pub") }

func (c Cloud) lockFile() string     { return "/run/" + c.Name + "-localcloud.lock" }
func (c Cloud) path(f string) string { return filepath.Join(c.RunDir(), f) }
func (c Cloud) instancesDir() string { return filepath.Join(c.DiskDir(), "instances") }

// endpointEnv points the SDK and the aws CLI at the cloud's services (the names of AWS's
// endpoints, in effect) with the checksum settings third-party S3 servers need.
func endpointEnv() []string {
	ep := func(port string) string { return "http://" + host + ":" + port }
	return []string{
		"AWS_ENDPOINT_URL=" + ep(motoPort),
		"AWS_ENDPOINT_URL_S3=" + ep(s3Port),
		"AWS_ENDPOINT_URL_PRICING=" + ep(pricingPort),
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required",
		"AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
	}
}

// awsEnv is the operator's environment: the endpoints, a region and the cloud's credentials.
func awsEnv() []string {
	return append(endpointEnv(),
		"AWS_REGION="+region,
		"AWS_DEFAULT_REGION="+region,
		"AWS_ACCESS_KEY_ID="+accessKey,
		"AWS_SECRET_ACCESS_KEY="+secretKey,
		"AWS_EC2_METADATA_DISABLED=true",
	)
}

// instanceEnv is the environment of an instance's processes. As on EC2 it holds no region
// and no credentials: those come from the instance's metadata service, whose address stands
// in for EC2's link-local one.
func instanceEnv(ip string) []string {
	return append(endpointEnv(), "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imdsEndpoint(ip))
}

// savedEnv reads the environment the supervisor wrote once the cloud was up; an ExitLocal
// error says the cloud is down.
func (c Cloud) savedEnv() ([]string, error) {
	b, err := os.ReadFile(c.path("env"))
	if err != nil || !c.serving() {
		return nil, cli.WithHint(cli.Errorf(cli.ExitLocal, "the local cloud %q is down", c.Name),
			"start it with `localcloud up` (or scripts/localcloud up)")
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n"), nil
}

// serving reports whether the supervisor runs.
func (c Cloud) serving() bool {
	pid := readPid(c.path("serve.pid"))
	if pid <= 0 {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "serve")
}

func readPid(file string) int {
	var pid int
	if b, err := os.ReadFile(file); err == nil {
		fmt.Sscan(string(b), &pid)
	}
	return pid
}

func needRoot(what string) error {
	if os.Geteuid() != 0 {
		return cli.WithHint(cli.Errorf(cli.ExitLocal, "%s needs root (network namespaces, mounts, sshd)", what),
			"run it as root, for example with sudo")
	}
	return nil
}
