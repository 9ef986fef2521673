package cli

// VersionFlag gives a command --version through go-arg's Versioned interface.
type VersionFlag struct{}

// Version satisfies go-arg's Versioned interface so that --version is accepted.
func (VersionFlag) Version() string { return "" }
