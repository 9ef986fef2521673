package fanout

import "testing"

func TestShutsDown(t *testing.T) {
	for cmd, want := range map[string]bool{
		"sudo reboot":                   true,
		"sudo /sbin/poweroff":           true,
		"sync; sudo shutdown -r now":    true,
		"sudo systemctl reboot":         true,
		"(sleep 1; sudo halt) &":        true,
		"echo rebooting":                false,
		"grep -c reboot_count /var/log": false,
		"uptime":                        false,
	} {
		if got := shutsDown(cmd); got != want {
			t.Errorf("shutsDown(%q) = %v", cmd, got)
		}
	}
}
