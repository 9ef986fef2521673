module ec2kit

go 1.26.0

require (
	github.com/alexflint/go-arg v1.6.1
	golang.org/x/term v0.47.0
)

require (
	github.com/alexflint/go-scalar v1.2.0 // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	github.com/stretchr/testify v1.11.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.26.0 // indirect
)
