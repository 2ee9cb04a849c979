package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/natefinch/lumberjack.v2"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway/acl"
)

// AuditConfig configures the audit log.
type AuditConfig struct {
	// File is where the log goes, one JSON object a line; empty: no log.
	File string
	// MaxSizeMB is the size at which the file is rotated.
	MaxSizeMB int
	// MaxBackups is how many rotated files are kept.
	MaxBackups int
}

// auditEntry is one line of the audit log: a write, or a denial.
type auditEntry struct {
	Time time.Time `json:"time"`
	// Accessor is the token's accessor ID (never its secret); empty when
	// access control is off or the caller had no valid token.
	Accessor string `json:"accessor,omitempty"`
	Client   string `json:"client"`
	Method   string `json:"method"`
	Resource string `json:"resource,omitempty"`
	// Outcome is OK, or the error's reason (PERMISSION_DENIED,
	// UNAUTHENTICATED, CONFLICT, ...).
	Outcome string `json:"outcome"`
	// Revision is the store revision a successful write produced.
	Revision int64 `json:"revision,omitempty"`
	// Error explains a failure; it names accessors and resources, never a
	// secret.
	Error string `json:"error,omitempty"`
	// Suppressed counts the RATE_LIMITED denials not written since the
	// last one that was (at most one a second is).
	Suppressed int64 `json:"suppressed,omitempty"`
}

// auditLog writes the audit log and counts its entries. A nil *auditLog
// only counts.
type auditLog struct {
	mu     sync.Mutex
	w      io.WriteCloser // nil: no file
	events *prometheus.CounterVec

	limitedAt  time.Time // when the last RATE_LIMITED line was written
	suppressed int64     // RATE_LIMITED denials not written since
}

func newAuditLog(cfg AuditConfig, m *metrics) *auditLog {
	a := &auditLog{events: m.auditEvents}
	if cfg.File != "" {
		a.w = &lumberjack.Logger{Filename: cfg.File, MaxSize: max(cfg.MaxSizeMB, 1), MaxBackups: max(cfg.MaxBackups, 1)}
	}
	return a
}

func (a *auditLog) write(e auditEntry) {
	a.events.WithLabelValues(e.Outcome).Inc()
	if a.w == nil {
		return
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(append(b, '\n'))
}

// sample reports whether a RATE_LIMITED denial is written: one a second,
// so that a guesser cannot rotate the real entries out of the log.
func (a *auditLog) sample(e *auditEntry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.limitedAt) < time.Second {
		a.suppressed++
		return false
	}
	a.limitedAt, e.Suppressed, a.suppressed = time.Now(), a.suppressed, 0
	return true
}

func (a *auditLog) entry(c caller, method, resource string) auditEntry {
	return auditEntry{Time: time.Now().UTC(), Accessor: c.p.AccessorID, Client: c.addr, Method: methodName(method), Resource: resource}
}

// methodName shortens a gRPC method to its name (/junction.v1.ConfigService/PutConfig: PutConfig).
func methodName(m string) string {
	if strings.HasPrefix(m, "/") {
		return path.Base(m)
	}
	return m
}

// denied records a refused request.
func (a *auditLog) denied(c caller, method, resource string, err error) {
	e := a.entry(c, method, resource)
	e.Outcome = reasonOf(pb.Status(err).Err())
	e.Error = auditMessage(err)
	if e.Outcome == "RATE_LIMITED" && !a.sample(&e) {
		a.events.WithLabelValues(e.Outcome).Inc()
		return
	}
	a.write(e)
}

// auditMessage is an error as the audit log tells it: a second bootstrap's
// error names the reset code, which stays out of the log.
func auditMessage(err error) string {
	if errors.Is(err, acl.ErrAlreadyBootstrapped) {
		return "the ACL is already bootstrapped"
	}
	return pb.Status(err).Message()
}

// wrote records a write and its outcome.
func (a *auditLog) wrote(c caller, method, resource string, resp any, err error) {
	e := a.entry(c, method, resource)
	e.Outcome = reasonOf(pb.Status(err).Err())
	if err != nil {
		e.Error = auditMessage(err)
	}
	e.Revision = revisionOf(resp)
	a.write(e)
}

// revisionOf finds the revision a write's response reports.
func revisionOf(resp any) int64 {
	switch r := resp.(type) {
	case interface{ GetRevision() int64 }:
		return r.GetRevision()
	case interface{ GetConfig() *pb.Config }:
		return r.GetConfig().GetRevision()
	}
	return 0
}

// Close closes the file.
func (a *auditLog) Close() error {
	if a.w == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Close()
}
