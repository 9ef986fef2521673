// Package fleet talks to EC2: it resolves selectors to instances, launches, lists, waits for
// and terminates them.
package fleet

import (
	"strings"
	"time"
)

// Instance is what every command needs to know about one EC2 instance.
type Instance struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"` // the Name tag
	Type        string            `json:"type"`
	State       string            `json:"state"`     // pending, running, stopping, stopped, shutting-down, terminated
	Lifecycle   string            `json:"lifecycle"` // "spot" or "on-demand"
	Zone        string            `json:"zone"`
	PrivateIP   string            `json:"private_ip,omitempty"`
	PublicIP    string            `json:"public_ip,omitempty"`
	KeyName     string            `json:"key_name,omitempty"` // EC2 key pair; its private key is paths.KeyFile(KeyName) when ec2-new made it
	User        string            `json:"user"`               // login user, from the ec2kit:user tag (ec2-user when absent)
	LaunchTime  time.Time         `json:"launch_time"`
	Tags        map[string]string `json:"tags"`
	SpotRequest string            `json:"spot_request,omitempty"` // spot instance request id, if any
	StateReason string            `json:"state_reason,omitempty"` // why it is in its state (for example why it was terminated), if EC2 says
	// Interruption: a spot instance EC2 is taking back (notice) or took back (interrupted),
	// with EC2's message; filled in by Client.Interruptions.
	Interruption     Interruption `json:"interruption,omitempty"`
	InterruptionNote string       `json:"interruption_note,omitempty"`
}

// Address is where to reach the instance over SSH: its public address, or its private one
// when it has none or private is asked for.
func (i Instance) Address(private bool) string {
	if private || i.PublicIP == "" {
		return i.PrivateIP
	}
	return i.PublicIP
}

// Label is how output names the instance: its Name tag when unique enough, else its id.
func (i Instance) Label() string {
	if i.Name != "" {
		return i.Name + "/" + i.ID
	}
	return i.ID
}

// LoginUser is an image's default login user, from its name, as the distributions set it.
func LoginUser(imageName string) string {
	switch n := strings.ToLower(imageName); {
	case strings.Contains(n, "ubuntu"):
		return "ubuntu"
	case strings.HasPrefix(n, "debian"):
		return "admin"
	}
	return "ec2-user"
}
