// Command driver is ec2-ssh / ec2-scp's fan-out path (internal/fanout, internal/transfer)
// without the EC2 lookup, for benchmarking against plain sshd hosts named by address.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"ec2kit/internal/fanout"
	"ec2kit/internal/sshx"
	"ec2kit/internal/transfer"
)

func main() {
	hostsFile := flag.String("hosts", "", "file with one address per line")
	key := flag.String("key", "", "private key")
	knownHosts := flag.String("known-hosts", "", "known_hosts file (instance id = address)")
	cmd := flag.String("cmd", "", "command to run")
	push := flag.String("push", "", "local file to push to --dest")
	dest := flag.String("dest", "/mnt/", "remote destination of --push")
	parallel := flag.Int("parallel", 256, "hosts at a time")
	flag.Parse()
	f, err := os.Open(*hostsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var hosts []sshx.Host
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		a := sc.Text()
		hosts = append(hosts, sshx.Host{Label: a, Target: sshx.Target{ID: a, Addr: a, User: "root"}})
	}
	cfg := &sshx.Config{KeyFiles: []string{*key}, KnownHosts: *knownHosts, SSHConfig: "none", ConnectTimeout: 30 * time.Second}
	p := &fanout.Pool{Config: cfg, Parallel: *parallel}
	var res []fanout.Result
	if *push != "" {
		res = p.Each(context.Background(), hosts, func(ctx context.Context, h sshx.Host, c *sshx.Conn) error {
			return transfer.Push(ctx, c.Client, *push, *dest)
		}, nil)
	} else {
		out, _ := fanout.NewOutput(fanout.Prefixed, os.Stdout, os.Stderr, "")
		res = fanout.RunCommand(context.Background(), p, hosts, fanout.Command{Cmd: *cmd}, out)
	}
	if c := fanout.ExitCode(res); c != 0 {
		fanout.Summary(os.Stderr, res)
		os.Exit(c)
	}
}
