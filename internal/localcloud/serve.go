package localcloud

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"ec2kit/internal/localcloud/netmodel"
	"ec2kit/internal/localcloud/pricingsrv"
	"ec2kit/internal/localcloud/sandbox"
	"ec2kit/internal/localcloud/watcher"
)

//go:embed moto_launcher.py
var motoLauncher []byte

//go:embed amis.json
var amis []byte

// al2023SSM is the public parameter scripts resolve the default AMI with; moto answers it
// from its own data, so the AMI list must hold the image it names.
const al2023SSM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"

type service struct{ Name, Where string }

type status struct {
	Pid      int
	Services []service
	Hosts    []watcher.HostStatus
	Net      *netmodel.Model `json:",omitempty"` // the network model in force, if any
}

// serve is the supervisor, running inside the namespace. It tells `up` on fd 3 whether the
// cloud came up ("ok" or "error: why"), then runs until SIGTERM and takes everything down.
// scale, when set, slows the model down that many times instead; sshRTT, when set, replaces
// its SSH round trip.
func serve(ctx context.Context, c Cloud, model string, scale int, sshRTT *time.Duration) error {
	ready := os.NewFile(3, "ready")
	log.SetPrefix("serve: ")
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &supervisor{c: c}
	if m, ok := netmodel.Models[model]; ok {
		if scale > 0 {
			m = m.Slower(scale)
		}
		if sshRTT != nil {
			m.SSHRTT = *sshRTT
		}
		s.net = &netmodel.Shaper{Model: m, Dev: "lo"}
		defer s.net.Close()
	}
	defer s.stopAll()
	w, err := s.start(ctx)
	if err != nil {
		log.Printf("failed: %v", err)
		fmt.Fprintf(ready, "error: %v\n", err)
		return err
	}
	fmt.Fprintln(ready, "ok")
	ready.Close()
	log.Print("the local cloud is up")
	w.Run(ctx) // until SIGTERM; kills every host on the way out
	log.Print("shutting down")
	return nil
}

type supervisor struct {
	c     Cloud
	procs []*proc
	net   *netmodel.Shaper // the network model in force, nil for plain loopback
}

// proc is a service process; exited closes when it ends.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (s *supervisor) start(ctx context.Context) (*watcher.Watcher, error) {
	c := s.c
	if err := os.WriteFile(c.path("serve.pid"), fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		return nil, err
	}
	if err := checkLoopbackOnly(); err != nil {
		return nil, err
	}
	for _, p := range []string{motoPort, s3Port, pricingPort} {
		l, err := net.Listen("tcp", host+":"+p)
		if err != nil {
			return nil, fmt.Errorf("port %s:%s is taken inside namespace %s: %v", host, p, c.Name, err)
		}
		l.Close()
	}
	if err := s.startMoto(ctx); err != nil {
		return nil, err
	}
	if err := s.startVersitygw(ctx); err != nil {
		return nil, err
	}
	pl, err := net.Listen("tcp", host+":"+pricingPort)
	if err != nil {
		return nil, fmt.Errorf("pricing server: %v", err)
	}
	go http.Serve(pl, pricingsrv.Handler())

	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(accessKey, secretKey, "")),
		config.WithBaseEndpoint("http://"+host+":"+motoPort))
	if err != nil {
		return nil, err
	}
	ec2c := ec2.NewFromConfig(cfg)
	md := newMetadata(ec2c, iam.NewFromConfig(cfg), s.c.path(spotNotices))
	if err := md.serve(ctx); err != nil {
		return nil, err
	}
	vpc, subnet, err := checkNetwork(ctx, ec2c)
	if err != nil {
		return nil, err
	}
	if err := checkAMIs(ctx, ec2c, ssm.NewFromConfig(cfg)); err != nil {
		return nil, err
	}
	awscli, err := awscliVenv()
	if err != nil {
		return nil, err
	}
	env := append(awsEnv(), "EC2KIT_LOCALCLOUD="+c.RunDir(), "EC2KIT_LOCALCLOUD_NAME="+c.Name, "EC2KIT_SUBNET="+subnet, "EC2KIT_VPC="+vpc)
	envOf := instanceEnv
	if s.net != nil {
		if err := s.net.Setup(); err != nil {
			return nil, err
		}
		// Each instance reads S3 at an address of its own, which the model shapes as its NIC.
		envOf = func(ip string) []string {
			alias, err := netmodel.Alias(ip)
			if err != nil {
				return instanceEnv(ip)
			}
			env := instanceEnv(ip)
			for i, kv := range env {
				if strings.HasPrefix(kv, "AWS_ENDPOINT_URL_S3=") {
					env[i] = "AWS_ENDPOINT_URL_S3=http://" + alias + ":" + s3Port
				}
			}
			return env
		}
	}
	w := &watcher.Watcher{
		Cloud: &watcher.EC2{Client: ec2c, Env: envOf, Hide: []string{c.DiskDir()}, AWSCLI: awscli},
		Boot: func(spec sandbox.Spec) (watcher.Host, error) {
			relaySSH := s.net != nil && s.net.Model.SSHRTT > 0
			if s.net != nil {
				if err := s.net.AddInstance(spec.IP); err != nil {
					return nil, err
				}
			}
			if relaySSH {
				// sshd moves aside: the instance's address is the delay line's.
				sshd, err := netmodel.SSHD(spec.IP)
				if err != nil {
					return nil, err
				}
				spec.SSHD = sshd
			}
			h, err := sandbox.Start("/proc/self/exe", instanceDir(c, spec.ID), spec)
			if err != nil {
				return nil, err
			}
			if relaySSH {
				if err := s.net.RelaySSH(spec.IP, h.Done()); err != nil {
					h.Kill()
					return nil, err
				}
			}
			if err := copyFile(sandbox.HostKeyFile(h.Dir), c.hostKeyFile(spec.ID)); err != nil {
				h.Kill()
				return nil, err
			}
			return h, nil
		},
		Discard: func(id string) error {
			os.Remove(c.hostKeyFile(id))
			return os.RemoveAll(instanceDir(c, id))
		},
		Interval: 300 * time.Millisecond,
		Log:      log.Default(),
	}
	if err := s.control(ctx, w, md); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.path("env"), []byte(strings.Join(env, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	return w, nil
}

// checkLoopbackOnly refuses to run anywhere but a namespace whose only link is lo, so no
// address an emulator makes up can lead a packet off the machine.
func checkLoopbackOnly() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return fmt.Errorf("the network namespace has a non-loopback link %q; refusing to run", i.Name)
		}
	}
	return nil
}

func (s *supervisor) spawn(name string, env []string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(s.c.path(name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	s.procs = append(s.procs, p)
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// await polls ready until it succeeds, the process ends or the time is up.
func (s *supervisor) await(ctx context.Context, name string, p *proc, ready func() bool) error {
	deadline := time.Now().Add(90 * time.Second)
	for !ready() {
		select {
		case <-p.exited:
			return fmt.Errorf("%s failed to start (%s); its log: %s", name, p.cmd.ProcessState, tail(s.c.path(name+".log")))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not become ready in 90s; its log: %s", name, tail(s.c.path(name+".log")))
		}
	}
	return nil
}

func tail(file string) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

func cache() string {
	if d := os.Getenv("EC2KIT_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "ec2kit")
}

func tool(envVar, def string) (string, error) {
	p := os.Getenv(envVar)
	if p == "" {
		p = def
	}
	if _, err := exec.LookPath(p); err != nil {
		return "", fmt.Errorf("%s not found (%v): run scripts/setup, or set %s", p, err, envVar)
	}
	return p, nil
}

// awscliVenv is the Python venv holding the aws CLI instances get (scripts/setup makes it):
// a current one, since Debian's ignores AWS_ENDPOINT_URL.
func awscliVenv() (string, error) {
	dir := os.Getenv("EC2KIT_AWSCLI_VENV")
	if dir == "" {
		dir = filepath.Join(cache(), "awscli-venv")
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "python")); err != nil {
		return "", fmt.Errorf("the aws CLI for instances is missing (%v): run scripts/setup, or set EC2KIT_AWSCLI_VENV", err)
	}
	return dir, nil
}

func (s *supervisor) startMoto(ctx context.Context) error {
	py, err := tool("EC2KIT_MOTO_PYTHON", filepath.Join(cache(), "moto-venv", "bin", "python"))
	if err != nil {
		return err
	}
	files := map[string][]byte{"moto_launcher.py": motoLauncher, "amis.json": amis}
	spot, _ := json.Marshal(map[string]any{
		"base": pricingsrv.OnDemand, "default": 0.1,
		// Spot prices per zone, as a fraction of on-demand: they differ, so that choosing
		// the cheapest zone matters.
		"zones": map[string]float64{"a": 0.31, "b": 0.27, "c": 0.35, "d": 0.29, "e": 0.38, "f": 0.33},
	})
	files["spot-prices.json"] = spot
	for name, b := range files {
		if err := os.WriteFile(s.c.path(name), b, 0o644); err != nil {
			return err
		}
	}
	cmd, err := s.spawn("moto", []string{
		"MOTO_AMIS_PATH=" + s.c.path("amis.json"),
		"MOTO_ENABLE_AMI_VALIDATION=true",
		"MOTO_ENABLE_KEYPAIR_VALIDATION=true",
		// AWS's managed policies (AmazonS3ReadOnlyAccess for a node role) are absent otherwise.
		"MOTO_IAM_LOAD_MANAGED_POLICIES=true",
	}, py, s.c.path("moto_launcher.py"), host, motoPort, s.c.path("spot-prices.json"))
	if err != nil {
		return err
	}
	return s.await(ctx, "moto", cmd, func() bool {
		resp, err := http.Get("http://" + host + ":" + motoPort + "/moto-api/data.json")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
}

func (s *supervisor) startVersitygw(ctx context.Context) error {
	gw, err := tool("EC2KIT_VERSITYGW", filepath.Join(cache(), "bin", "versitygw"))
	if err != nil {
		return err
	}
	data, meta := filepath.Join(s.c.DiskDir(), "s3data"), filepath.Join(s.c.DiskDir(), "s3meta")
	for _, d := range []string{data, meta} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	listen := host + ":" + s3Port
	if s.net != nil {
		// Instances reach S3 at their aliases, by which the network model tells their
		// traffic apart: a front on each, at the same port, passes their requests on.
		port, _ := strconv.Atoi(s3Port)
		s.net.S3Port, s.net.Upstream = uint16(port), listen
	}
	cmd, err := s.spawn("versitygw", []string{"ROOT_ACCESS_KEY=" + accessKey, "ROOT_SECRET_KEY=" + secretKey},
		gw, "--port", listen, "posix", "--sidecar", meta, data)
	if err != nil {
		return err
	}
	return s.await(ctx, "versitygw", cmd, func() bool {
		conn, err := net.DialTimeout("tcp", host+":"+s3Port, time.Second)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

func (s *supervisor) stopAll() {
	for _, p := range s.procs {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range s.procs {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	}
}

// checkNetwork confirms the launcher's default VPC (127.1.0.0/16, no public addresses) and
// returns its id and the subnet of the first zone.
func checkNetwork(ctx context.Context, c *ec2.Client) (vpc, subnet string, err error) {
	vs, err := c.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
	if err != nil {
		return "", "", fmt.Errorf("moto: %w", err)
	}
	for _, v := range vs.Vpcs {
		if aws.ToString(v.CidrBlock) != "127.1.0.0/16" || !aws.ToBool(v.IsDefault) {
			return "", "", fmt.Errorf("moto has VPC %s (%s): only the loopback default VPC may exist", aws.ToString(v.VpcId), aws.ToString(v.CidrBlock))
		}
		vpc = aws.ToString(v.VpcId)
	}
	ss, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id"), Values: []string{vpc}}}})
	if err != nil {
		return "", "", fmt.Errorf("moto: %w", err)
	}
	for _, sn := range ss.Subnets {
		if aws.ToBool(sn.MapPublicIpOnLaunch) {
			return "", "", fmt.Errorf("subnet %s maps public addresses", aws.ToString(sn.SubnetId))
		}
		if aws.ToString(sn.AvailabilityZone) == region+"a" {
			subnet = aws.ToString(sn.SubnetId)
		}
	}
	if vpc == "" || subnet == "" {
		return "", "", errors.New("moto has no default VPC with a subnet in " + region + "a")
	}
	return vpc, subnet, nil
}

// checkAMIs confirms that the SSM parameter for the latest Amazon Linux names an AMI moto has.
func checkAMIs(ctx context.Context, c *ec2.Client, s *ssm.Client) error {
	p, err := s.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(al2023SSM)})
	if err != nil {
		return fmt.Errorf("moto SSM %s: %w", al2023SSM, err)
	}
	id := aws.ToString(p.Parameter.Value)
	im, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{id}})
	if err != nil || len(im.Images) == 0 {
		return fmt.Errorf("%s names %s, which is not in the AMI list (%v)", al2023SSM, id, err)
	}
	return nil
}

// control serves status and faults on the unix socket the commands call.
func (s *supervisor) control(ctx context.Context, w *watcher.Watcher, md *metadata) error {
	sock := s.c.path("control.sock")
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	network := "loopback, unshaped (localcloud up --net ec2: a network like EC2's)"
	var model *netmodel.Model
	if s.net != nil {
		network, model = s.net.Model.String(), &s.net.Model
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(rw http.ResponseWriter, r *http.Request) {
		json.NewEncoder(rw).Encode(status{Pid: os.Getpid(), Services: []service{
			{"ec2", "moto at http://" + host + ":" + motoPort + " (also IAM, SSM, STS)"},
			{"s3", "versitygw at http://" + host + ":" + s3Port + " (data in " + filepath.Join(s.c.DiskDir(), "s3data") + ")"},
			{"pricing", "http://" + host + ":" + pricingPort},
			{"metadata", "IMDSv2 at http://<instance address>:" + imdsPort + "/ (each instance's AWS_EC2_METADATA_SERVICE_ENDPOINT)"},
			{"watcher", "polls EC2 every 300ms"},
			{"network", network},
		}, Hosts: w.Status(), Net: model})
	})
	mux.HandleFunc("POST /fault", func(rw http.ResponseWriter, r *http.Request) {
		id, mode := r.URL.Query().Get("id"), r.URL.Query().Get("mode")
		if mode == "interrupt" {
			notice, _ := time.ParseDuration(r.URL.Query().Get("notice"))
			faultReply(rw, id, mode, md.interrupt(ctx, id, notice))
			return
		}
		if mode == "slow" {
			frac, _ := strconv.ParseFloat(r.URL.Query().Get("nic"), 64)
			faultReply(rw, id, mode, s.setNIC(ctx, md, id, frac))
			return
		}
		f := watcher.Fault(mode)
		if mode == "up" {
			f = watcher.FaultNone
			if s.net != nil {
				if err := s.setNIC(ctx, md, id, 1); err != nil {
					faultReply(rw, id, mode, err)
					return
				}
			}
		}
		faultReply(rw, id, mode, w.SetFault(id, f))
	})
	go http.Serve(l, mux)
	return nil
}

// setNIC sets instance id's NIC in the network model to frac of the model's rate.
func (s *supervisor) setNIC(ctx context.Context, md *metadata, id string, frac float64) error {
	if s.net == nil {
		return errors.New("the network is not modelled: bring the cloud up with --net ec2")
	}
	in, err := md.runningInstance(ctx, id)
	if err != nil {
		return err
	}
	return s.net.SetNIC(aws.ToString(in.PrivateIpAddress), frac)
}

func faultReply(rw http.ResponseWriter, id, mode string, err error) {
	switch {
	case errors.Is(err, watcher.ErrNoHost), errors.Is(err, errNoInstance):
		http.Error(rw, id+": "+err.Error(), http.StatusNotFound)
	case errors.Is(err, errNotSpot):
		http.Error(rw, id+" "+err.Error(), http.StatusConflict)
	case err != nil:
		http.Error(rw, err.Error(), http.StatusConflict)
	default:
		log.Printf("%s: fault %s", id, mode)
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(dst), 0o755)
	}
	if err == nil {
		err = os.WriteFile(dst, b, 0o644)
	}
	return err
}
