package launch

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"ec2kit/internal/awsconf"
	"ec2kit/internal/cli"
	"ec2kit/internal/fleet"
)

// image is what a launch needs to know about its AMI.
type image struct {
	ID, Name, User, RootDevice string
}

// alias is a distribution's newest image: by public SSM parameter, or by owner and name.
type alias struct {
	param       string // SSM parameter, %s = arch
	owner, name string // else DescribeImages owner and name pattern, %s = arch (Debian's names)
	user        string
}

var aliases = map[string]alias{
	"al2023": {param: "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-%s", user: "ec2-user"},
	"ubuntu": {owner: "099720109477", name: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-%s-server-*", user: "ubuntu"},
	"debian": {owner: "136693071363", name: "debian-12-%s-*", user: "admin"},
}

// archNames are how each naming scheme spells an architecture.
var archNames = map[string]map[string]string{
	"x86_64": {"al2023": "x86_64", "ubuntu": "amd64", "debian": "amd64"},
	"arm64":  {"al2023": "arm64", "ubuntu": "arm64", "debian": "arm64"},
}

// findImage resolves --ami for an architecture: an alias's newest image or an ami- id.
func (l *launcher) findImage(ctx context.Context, ami, arch string) (image, error) {
	if ami == "" {
		ami = "al2023"
	}
	in := &ec2.DescribeImagesInput{}
	user := ""
	switch a := aliases[ami]; {
	case strings.HasPrefix(ami, "ami-"):
		in.ImageIds = []string{ami}
	case a.param != "":
		name := strings.Replace(a.param, "%s", archNames[arch]["al2023"], 1)
		out, err := l.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
		if err != nil {
			return image{}, awsconf.Err("SSM GetParameter "+name, err)
		}
		in.ImageIds, user = []string{aws.ToString(out.Parameter.Value)}, a.user
	default:
		in.Owners = []string{a.owner}
		in.Filters = []types.Filter{
			{Name: aws.String("name"), Values: []string{strings.Replace(a.name, "%s", archNames[arch][ami], 1)}},
			{Name: aws.String("architecture"), Values: []string{arch}},
			{Name: aws.String("state"), Values: []string{"available"}},
		}
		user = a.user
	}
	out, err := l.ec2.DescribeImages(ctx, in)
	if err != nil {
		return image{}, awsconf.Err("DescribeImages", err)
	}
	if len(out.Images) == 0 {
		return image{}, cli.Errorf(cli.ExitAWS, "no %s image for %s in %s", ami, arch, l.region)
	}
	// Newest first; CreationDate is RFC 3339, so it sorts as a string.
	newest := slices.MaxFunc(out.Images, func(a, b types.Image) int {
		return strings.Compare(aws.ToString(a.CreationDate), aws.ToString(b.CreationDate))
	})
	img := image{ID: aws.ToString(newest.ImageId), Name: aws.ToString(newest.Name), User: user, RootDevice: aws.ToString(newest.RootDeviceName)}
	if img.User == "" {
		img.User = fleet.LoginUser(img.Name)
	}
	return img, nil
}
