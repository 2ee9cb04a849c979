// Package health runs active health checks — HTTP, TCP connect and the gRPC
// health protocol (grpc.health.v1) — and turns their results into health
// transitions with pass and fail thresholds, so that a flapping target does
// not flap the instance.
//
// It is the prober of Junction's health checking: a Monitor per checked
// instance runs its Check on an interval, keeps the recent results, and
// reports each transition once.
package health

import (
	"cmp"
	"net"
	"net/url"
	"time"

	"github.com/junctionhq/junction/model"
)

// Kind is the kind of an active check.
type Kind string

// The kinds of checks.
const (
	// HTTP: a GET of Target passes when the status is ExpectStatus (any 2xx
	// when ExpectStatus is 0).
	HTTP Kind = "http"
	// TCP: a connect to Target passes.
	TCP Kind = "tcp"
	// GRPC: grpc.health.v1 Check of GRPCService at Target passes when it
	// answers SERVING.
	GRPC Kind = "grpc"
)

// Check describes an active health check.
type Check struct {
	Kind Kind `json:"kind"`
	// Target is a URL (http) or HOST:PORT (tcp, grpc).
	Target string `json:"target"`
	// ExpectStatus is the HTTP status that passes (0: any 2xx).
	ExpectStatus int `json:"expectStatus,omitempty"`
	// GRPCService is the service name asked of the gRPC health service
	// ("": the server as a whole).
	GRPCService string `json:"grpcService,omitempty"`
	// Interval between probes, and Timeout of one probe.
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
	// Rise is how many consecutive passes turn an unhealthy target healthy;
	// Fall how many consecutive failures turn a healthy one unhealthy.
	Rise int `json:"rise"`
	Fall int `json:"fall"`
}

// Defaults for the fields of a Check left zero.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// WithDefaults fills the zero fields of c with the defaults.
func (c Check) WithDefaults() Check {
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.Timeout = cmp.Or(c.Timeout, min(DefaultTimeout, c.Interval))
	c.Rise = cmp.Or(c.Rise, DefaultRise)
	c.Fall = cmp.Or(c.Fall, DefaultFall)
	return c
}

// Validate checks c (with its defaults applied) and names the offending
// field in a model.ErrInvalidArgument.
func (c Check) Validate() error {
	switch c.Kind {
	case HTTP:
		u, err := url.Parse(c.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return model.Invalid("check.target", "%q is not an http:// or https:// URL", c.Target)
		}
		if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
			return model.Invalid("check.expectStatus", "%d is not an HTTP status", c.ExpectStatus)
		}
	case TCP, GRPC:
		if _, port, err := net.SplitHostPort(c.Target); err != nil || port == "" {
			return model.Invalid("check.target", "%q is not HOST:PORT", c.Target)
		}
	default:
		return model.Invalid("check.kind", "%q is not http, tcp or grpc", c.Kind)
	}
	switch {
	case c.Interval < 100*time.Millisecond || c.Interval > time.Hour:
		return model.Invalid("check.interval", "%v is out of range 100ms..1h", c.Interval)
	case c.Timeout <= 0 || c.Timeout > c.Interval:
		return model.Invalid("check.timeout", "%v must be positive and at most the interval (%v)", c.Timeout, c.Interval)
	case c.Rise < 1 || c.Rise > 100:
		return model.Invalid("check.rise", "%d is out of range 1..100", c.Rise)
	case c.Fall < 1 || c.Fall > 100:
		return model.Invalid("check.fall", "%d is out of range 1..100", c.Fall)
	}
	return nil
}
