//go:build tools

// Package tools pins Polaris, the independent Go server that speaks the
// Nacos 1.x HTTP and 2.x gRPC protocols, which the nacos:// backend tests
// run against (no Java Nacos server can be installed here). It is a module
// of its own so that Polaris's dependencies never enter Junction's go.mod;
// .ci/polaris builds it.
package tools

import _ "github.com/polarismesh/polaris"
