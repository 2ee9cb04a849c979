package model

import (
	"errors"
	"fmt"
)

// The portable errors. Backends wrap their store's errors so that callers
// can test them with errors.Is; the gateway maps each one to a gRPC code and
// an HTTP status in a single table.
var (
	// ErrNotFound: the service, instance, config or session does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a compare-and-set precondition did not hold.
	ErrConflict = errors.New("conflict")
	// ErrInvalidArgument: the request is malformed; the message names the field.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: a value exceeds a configured size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnavailable: the store cannot serve the request right now (no
	// leader, connection lost); the caller may retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrCompacted: the requested revision is older than the retained history.
	ErrCompacted = errors.New("compacted")
	// ErrSessionExpired: the session is unknown or has expired.
	ErrSessionExpired = errors.New("session expired")
	// ErrPermissionDenied: the caller may not perform this operation.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: the request carries no valid credential (none,
	// malformed, unknown, expired or revoked).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrRateLimited: the caller sent too many requests of a kind (failed
	// authentications) and must wait.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnsupported: the backend cannot perform this operation at all.
	ErrUnsupported = errors.New("unsupported")
)

// FieldError is an error about one field of a request. It unwraps to its Kind
// (ErrInvalidArgument or ErrTooLarge) so errors.Is works on it.
type FieldError struct {
	Field  string // the offending field, in the wire (JSON) spelling
	Reason string // what is wrong with it
	Kind   error  // the portable error it belongs to
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap returns the portable error the field error belongs to.
func (e *FieldError) Unwrap() error { return e.Kind }

// Invalid returns an ErrInvalidArgument field error.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...), Kind: ErrInvalidArgument}
}

// TooLarge returns an ErrTooLarge field error.
func TooLarge(field string, size, limit int) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf("%d bytes exceeds the limit of %d bytes", size, limit), Kind: ErrTooLarge}
}

// FieldOf returns the field named by err, or "" when err carries none.
func FieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// Kind returns the portable sentinel err belongs to, or nil when it belongs
// to none of them.
func Kind(err error) error {
	for _, k := range []error{ErrInvalidArgument, ErrTooLarge, ErrNotFound, ErrConflict, ErrSessionExpired,
		ErrCompacted, ErrPermissionDenied, ErrUnauthenticated, ErrRateLimited, ErrUnsupported, ErrUnavailable} {
		if errors.Is(err, k) {
			return k
		}
	}
	return nil
}

// ErrUnknownSession is the error of a write naming a session the store does
// not know, or no longer: it belongs to ErrSessionExpired and names the
// session field.
var ErrUnknownSession error = &FieldError{Field: "session", Reason: "unknown or expired session", Kind: ErrSessionExpired}

// ConfigConflict is the error of a configuration write whose precondition
// does not hold on an item at revision cur (0: absent; negative: changed
// since it was read, at a revision the store does not tell).
func ConfigConflict(key ConfigKey, cond Precondition, cur int64) error {
	reason := fmt.Sprintf("config %s is at revision %d, not %d", key, cur, cond.Revision)
	if cur < 0 {
		reason = fmt.Sprintf("config %s changed since it was read at revision %d", key, cond.Revision)
	}
	return &FieldError{Field: "ifRevision", Reason: reason, Kind: ErrConflict}
}
