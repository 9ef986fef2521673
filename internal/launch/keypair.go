package launch

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"golang.org/x/crypto/ssh"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/paths"
)

// ensureKey returns the name of ec2kit's key pair for this account and region, creating it
// on first use: an ed25519 key made here (the private half never travels), its public half
// imported into EC2 and its private half kept in paths.KeyFile (mode 0600). The name holds
// the account and region, so several accounts never overwrite each other's key file.
func (l *launcher) ensureKey(ctx context.Context) (string, error) {
	id, err := l.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", awsconf.Err("STS GetCallerIdentity", err)
	}
	name := fmt.Sprintf("ec2kit-%s-%s", aws.ToString(id.Account), l.region)
	file := paths.KeyFile(name)
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key directory: %v", err)
	}
	// Two ec2-new starting at once in a fresh account must not make two keys.
	lock, err := os.OpenFile(file+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key lock: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", cli.Errorf(cli.ExitLocal, "key lock: %v", err)
	}

	out, err := l.ec2.DescribeKeyPairs(ctx, &ec2.DescribeKeyPairsInput{
		Filters: []types.Filter{{Name: aws.String("key-name"), Values: []string{name}}}})
	if err != nil {
		return "", awsconf.Err("DescribeKeyPairs", err)
	}
	inAWS := len(out.KeyPairs) > 0
	signer, err := readKey(file)
	switch {
	case err != nil:
		return "", err
	case inAWS && signer != nil:
		return name, nil
	case inAWS:
		return "", cli.WithHint(cli.Errorf(cli.ExitLocal, "key pair %s exists in EC2 but its private key %s is missing", name, file),
			fmt.Sprintf("copy %s from the machine that made it, or delete the key pair (aws ec2 delete-key-pair --key-name %s) to have a new one made", filepath.Base(file), name))
	case signer == nil:
		if signer, err = newKey(file); err != nil {
			return "", err
		}
	}
	_, err = l.ec2.ImportKeyPair(ctx, &ec2.ImportKeyPairInput{
		KeyName:           aws.String(name),
		PublicKeyMaterial: ssh.MarshalAuthorizedKey(signer.PublicKey()),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeKeyPair,
			Tags: []types.Tag{{Key: aws.String("ec2kit:key-file"), Value: aws.String(file)}}}},
	})
	if err != nil {
		return "", awsconf.Err("ImportKeyPair", err)
	}
	fmt.Fprintf(l.log, "ec2-new: created key pair %s (private key %s)\n", name, file)
	return name, nil
}

// readKey reads a private key file; a missing file is (nil, nil).
func readKey(file string) (ssh.Signer, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "reading key: %v", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "key %s: %v", file, err)
	}
	return s, nil
}

// newKey makes an ed25519 key and writes it in OpenSSH format, mode 0600.
func newKey(file string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "ec2kit")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, cli.Errorf(cli.ExitLocal, "writing key: %v", err)
	}
	if err := errors.Join(pem.Encode(f, block), f.Close()); err != nil {
		os.Remove(file)
		return nil, cli.Errorf(cli.ExitLocal, "writing key: %v", err)
	}
	return ssh.NewSignerFromKey(priv)
}
