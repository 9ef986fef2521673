package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"golang.org/x/crypto/ssh"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/paths"
	"ec2kit/internal/sshkey"
)

// ensureKey returns the name of ec2kit's key pair for this account and region, creating it
// on first use: an ed25519 key made here (the private half never travels), its public half
// imported into EC2 and its private half kept in paths.KeyFile (mode 0600). The name holds
// the account and region, so several accounts never overwrite each other's key file. The
// local key files are the record: when EC2 has the key pair but this machine lacks its
// private key (another machine made it), a new key pair with a suffixed name is made.
func (l *launcher) ensureKey(ctx context.Context) (string, error) {
	id, err := l.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", awsconf.Err("STS GetCallerIdentity", err)
	}
	base := fmt.Sprintf("ec2kit-%s-%s", aws.ToString(id.Account), l.region)
	dir := filepath.Dir(paths.KeyFile(base))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key directory: %v", err)
	}
	// Two ec2-new starting at once in a fresh account must not make two keys.
	lock, err := os.OpenFile(filepath.Join(dir, base+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key lock: %v", err)
	}

	local, _ := filepath.Glob(filepath.Join(dir, base+"*.pem"))
	names := []string{base}
	for _, f := range local {
		if n := strings.TrimSuffix(filepath.Base(f), ".pem"); n != base {
			names = append(names, n)
		}
	}
	out, err := l.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
		Filters: []types.Filter{{Name: aws.String("key-name"), Values: names}}})
	if err != nil {
		return "", awsconf.Err("DescribeKeyPairs", err)
	}
	inAWS := map[string]bool{}
	for _, kp := range out.KeyPairs {
		inAWS[aws.ToString(kp.KeyName)] = true
	}
	for _, f := range local {
		if n := strings.TrimSuffix(filepath.Base(f), ".pem"); inAWS[n] {
			return n, nil
		}
	}
	name, signer := base, ssh.Signer(nil)
	if len(local) > 0 {
		// A key of ours that EC2 lost (or never got): import it again.
		name = strings.TrimSuffix(filepath.Base(local[0]), ".pem")
		if signer, err = readKey(local[0]); err != nil {
			return "", err
		}
	} else {
		if inAWS[base] {
			name = base + "-" + randomHex(3)
			fmt.Fprintf(l.log, "ec2-new: key pair %s exists in EC2 but its private key is not in %s: making %s\n", base, dir, name)
		}
		if signer, err = newKey(paths.KeyFile(name)); err != nil {
			return "", err
		}
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	_, err = l.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: pub})
	var ae smithy.APIError
	if len(local) == 0 && errors.As(err, &ae) && ae.ErrorCode() == "InvalidKeyPair.Duplicate" {
		// Another machine (another EC2KIT_HOME) made a key pair of this name between our look
		// and our import: keep ours under a name of its own.
		alt := base + "-" + randomHex(3)
		if err := os.Rename(paths.KeyFile(name), paths.KeyFile(alt)); err != nil {
			return "", cli.Errorf(cli.ExitLocal, "key file: %v", err)
		}
		fmt.Fprintf(l.log, "ec2-new: key pair %s was just made elsewhere: making %s\n", name, alt)
		name = alt
		_, err = l.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{KeyName: aws.String(name), PublicKeyMaterial: pub})
	}
	if err != nil {
		return "", awsconf.Err("ImportKeyPair", err)
	}
	fmt.Fprintf(l.log, "ec2-new: key pair %s ready (private key %s)\n", name, paths.KeyFile(name))
	return name, nil
}

// readKey reads a private key file.
func readKey(file string) (ssh.Signer, error) {
	s, err := sshkey.Read(file)
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "reading key: %w", err)
	}
	return s, nil
}

// newKey makes an ed25519 key and writes it in OpenSSH format, mode 0600.
func newKey(file string) (ssh.Signer, error) {
	s, err := sshkey.Write(file, "ec2kit")
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "writing key: %w", err)
	}
	return s, nil
}
