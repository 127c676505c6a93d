// Package deploytest holds the offline checks of deploy/: the image's static binaries (Dockerfile), the
// Helm chart (lint, render, strict decoding, flags, addresses, secrets) and the Terraform modules. It is
// its own module so that Helm's and HCL's dependencies never enter a service's go.mod; `make test` runs it.
package deploytest
