package launch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
)

// maxNum bounds --num where the account's vCPU quota cannot be read: a fleet is one
// request, waited for over SSH from this machine.
const maxNum = 1000

// vCPU quotas (Service Quotas, service "ec2") of the standard families (A, C, D, H, I, M, R,
// T, Z), which most fleets are; other families have quotas of their own and get maxNum.
const (
	quotaOnDemandStandard = "L-1216C47A" // Running On-Demand Standard instances
	quotaSpotStandard     = "L-34B43A08" // All Standard Spot Instance Requests
)

// checkQuota refuses a fleet larger than the account's vCPU quota for its kind of instance
// (whatever already runs counts too, so this is the least that must hold), or, when the
// quota cannot be read, larger than maxNum instances. It is a usage error: nothing is
// launched.
func (l *launcher) checkQuota(ctx context.Context, o Options, itype string, vcpus int) error {
	code, what := quotaOnDemandStandard, "running on-demand standard instances"
	if o.Spot {
		code, what = quotaSpotStandard, "standard spot instances"
	}
	family := strings.ToLower(itype[:1])
	if vcpus > 0 && strings.Contains("acdhimrtz", family) {
		limit, err := l.quota(ctx, code)
		if err == nil {
			if need := o.Num * vcpus; float64(need) > limit {
				return cli.WithHint(cli.Errorf(cli.ExitUsage, "--num %d: %d x %d vCPUs of %s is %d vCPUs, more than the account's quota of %.0f vCPUs for %s in %s (Service Quotas ec2 %s)",
					o.Num, o.Num, vcpus, itype, need, limit, what, l.region, code), "launch fewer, or ask AWS for more (Service Quotas console: request a quota increase)")
			}
			return nil
		}
		if o.Num > maxNum {
			fmt.Fprintf(l.log, "ec2-new: the vCPU quota could not be read (%v)\n", err)
		}
	}
	if o.Num > maxNum {
		return cli.Errorf(cli.ExitUsage, "--num %d: more than %d instances in one launch, and no vCPU quota of the account says this many can run", o.Num, maxNum)
	}
	return nil
}

// quotaWait bounds the quota look-up: it only guards against a mistake, so it must not
// hold a launch up.
const quotaWait = 5 * time.Second

// quota is a Service Quotas value of EC2: the account's own, else AWS's default.
func (l *launcher) quota(ctx context.Context, code string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, quotaWait)
	defer cancel()
	in := &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code)}
	out, err := l.quotas.GetServiceQuota(ctx, in)
	var none *sqtypes.NoSuchResourceException
	if errors.As(err, &none) {
		var def *servicequotas.GetAWSDefaultServiceQuotaOutput
		def, err = l.quotas.GetAWSDefaultServiceQuota(ctx, &servicequotas.GetAWSDefaultServiceQuotaInput{ServiceCode: in.ServiceCode, QuotaCode: in.QuotaCode})
		if err == nil {
			out = &servicequotas.GetServiceQuotaOutput{Quota: def.Quota}
		}
	}
	if err != nil {
		return 0, err
	}
	if out.Quota == nil || out.Quota.Value == nil {
		return 0, errors.New("no value in the answer")
	}
	return *out.Quota.Value, nil
}

// checkName refuses to launch under the name of a fleet that has live instances, which
// would make the two one fleet for every selector, unless joining is asked for.
func (l *launcher) checkName(ctx context.Context, o Options) error {
	if o.generated || o.Join {
		return nil
	}
	found, err := l.fleet.Describe(ctx, []types.Filter{
		{Name: aws.String("tag:Name"), Values: []string{o.Name}},
		{Name: aws.String("instance-state-name"), Values: fleet.LiveStates}})
	if err != nil || len(found) == 0 {
		return err
	}
	return cli.WithHint(cli.Errorf(cli.ExitUsage, "a fleet named %s already has %d instance(s): %s", o.Name, len(found), strings.Join(fleet.IDs(found), " ")),
		"pick another name, or add --join to launch more into it")
}
