//go:build tools

// Package tools pins the Consul server the consul:// backend tests run
// against. It is a module of its own so that Consul's dependencies never
// enter Junction's go.mod; .ci/consul builds it.
package tools

import _ "github.com/hashicorp/consul"
