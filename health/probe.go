package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Result is the outcome of one probe.
type Result struct {
	At      time.Time     `json:"at"`
	Pass    bool          `json:"pass"`
	Output  string        `json:"output"`
	Latency time.Duration `json:"latency"`
}

// maxOutput bounds the output a result keeps.
const maxOutput = 256

// Prober runs the probes of one check, reusing its connections (one HTTP
// client, one gRPC connection) from probe to probe.
type Prober struct {
	check Check
	http  *http.Client

	mu   sync.Mutex
	conn *grpc.ClientConn
}

// NewProber returns a prober of c (with its defaults applied).
func NewProber(c Check) *Prober {
	c = c.WithDefaults()
	p := &Prober{check: c}
	if c.Kind == HTTP {
		p.http = &http.Client{
			Timeout: c.Timeout,
			// A health endpoint answers for itself: redirects fail the check
			// as they are, like Consul's and Kubernetes' HTTP checks do not
			// follow them to another host.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1,
				TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}},
		}
	}
	return p
}

// Probe runs one probe, bounded by the check's timeout and ctx.
func (p *Prober) Probe(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, p.check.Timeout)
	defer cancel()
	start := time.Now()
	var out string
	var err error
	switch p.check.Kind {
	case HTTP:
		out, err = p.probeHTTP(ctx)
	case TCP:
		out, err = p.probeTCP(ctx)
	case GRPC:
		out, err = p.probeGRPC(ctx)
	default:
		err = fmt.Errorf("unknown check kind %q", p.check.Kind)
	}
	r := Result{At: start, Pass: err == nil, Output: out, Latency: time.Since(start)}
	if err != nil {
		r.Output = err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			r.Output = fmt.Sprintf("timed out after %v", p.check.Timeout)
		}
	}
	r.Output = truncate(r.Output)
	return r
}

// Close releases the prober's connections.
func (p *Prober) Close() error {
	if p.http != nil {
		p.http.CloseIdleConnections()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		err := p.conn.Close()
		p.conn = nil
		return err
	}
	return nil
}

func (p *Prober) probeHTTP(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.check.Target, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", "junction-health-check")
	resp, err := p.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxOutput))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	out := resp.Status
	if b := strings.TrimSpace(string(body)); b != "" {
		out += ": " + b
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if p.check.ExpectStatus != 0 {
		ok = resp.StatusCode == p.check.ExpectStatus
	}
	if !ok {
		return "", errors.New(out)
	}
	return out, nil
}

func (p *Prober) probeTCP(ctx context.Context) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.check.Target)
	if err != nil {
		return "", err
	}
	c.Close()
	return "connected to " + p.check.Target, nil
}

func (p *Prober) probeGRPC(ctx context.Context) (string, error) {
	p.mu.Lock()
	if p.conn == nil {
		conn, err := grpc.NewClient(p.check.Target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			p.mu.Unlock()
			return "", err
		}
		p.conn = conn
	}
	conn := p.conn
	p.mu.Unlock()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.check.GRPCService})
	if err != nil {
		return "", err
	}
	out := "grpc.health.v1: " + resp.GetStatus().String()
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", errors.New(out)
	}
	return out, nil
}

func truncate(s string) string {
	if len(s) <= maxOutput {
		return s
	}
	s = s[:maxOutput]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
