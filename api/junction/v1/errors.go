package junctionv1

import (
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/junctionhq/junction/model"
)

// ErrorDomain is the ErrorInfo domain of Junction's errors.
const ErrorDomain = "junction.dev"

// errorTable is the one place where portable errors meet the wire: each
// model error has a reason (in ErrorInfo and the JSON body), a gRPC code and
// an HTTP status.
var errorTable = []struct {
	err    error
	reason string
	code   codes.Code
	http   int
}{
	{model.ErrInvalidArgument, "INVALID_ARGUMENT", codes.InvalidArgument, http.StatusBadRequest},
	{model.ErrTooLarge, "TOO_LARGE", codes.InvalidArgument, http.StatusRequestEntityTooLarge},
	{model.ErrNotFound, "NOT_FOUND", codes.NotFound, http.StatusNotFound},
	{model.ErrConflict, "CONFLICT", codes.Aborted, http.StatusConflict},
	{model.ErrSessionExpired, "SESSION_EXPIRED", codes.NotFound, http.StatusNotFound},
	{model.ErrCompacted, "COMPACTED", codes.OutOfRange, http.StatusGone},
	{model.ErrPermissionDenied, "PERMISSION_DENIED", codes.PermissionDenied, http.StatusForbidden},
	{model.ErrUnauthenticated, "UNAUTHENTICATED", codes.Unauthenticated, http.StatusUnauthorized},
	{model.ErrRateLimited, "RATE_LIMITED", codes.ResourceExhausted, http.StatusTooManyRequests},
	{model.ErrUnsupported, "UNSUPPORTED", codes.Unimplemented, http.StatusNotImplemented},
	{model.ErrUnavailable, "UNAVAILABLE", codes.Unavailable, http.StatusServiceUnavailable},
}

// Status converts an error to a gRPC status carrying an ErrorInfo with the
// portable reason and, when known, the offending field.
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	kind := model.Kind(err)
	for _, row := range errorTable {
		if row.err != kind {
			continue
		}
		st := status.New(row.code, err.Error())
		info := &errdetails.ErrorInfo{Reason: row.reason, Domain: ErrorDomain}
		if f := model.FieldOf(err); f != "" {
			info.Metadata = map[string]string{"field": f}
		}
		if d, derr := st.WithDetails(info); derr == nil {
			return d
		}
		return st
	}
	return status.FromContextError(err)
}

// Reason returns the portable reason, field and HTTP status of a gRPC status.
func Reason(s *status.Status) (reason, field string, httpStatus int) {
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == ErrorDomain {
			for _, row := range errorTable {
				if row.reason == info.Reason {
					return row.reason, info.Metadata["field"], row.http
				}
			}
		}
	}
	for _, row := range errorTable {
		if row.code == s.Code() {
			return row.reason, "", row.http
		}
	}
	switch s.Code() {
	case codes.Canceled:
		return "CANCELED", "", 499
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED", "", http.StatusGatewayTimeout
	}
	return "INTERNAL", "", http.StatusInternalServerError
}

// Error turns an error received over gRPC back into one that errors.Is
// matches against the portable errors of package model.
func Error(err error) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() == codes.OK {
		return err
	}
	reason, field, _ := Reason(s)
	for _, row := range errorTable {
		if row.reason == reason {
			if field != "" {
				// The message is the field error's text, "field: reason".
				return &model.FieldError{Field: field, Reason: strings.TrimPrefix(s.Message(), field+": "), Kind: row.err}
			}
			return &wireError{msg: s.Message(), kind: row.err, st: s}
		}
	}
	return err
}

// wireError is a portable error received from a server.
type wireError struct {
	msg  string
	kind error
	st   *status.Status
}

func (e *wireError) Error() string { return e.msg }

func (e *wireError) Unwrap() error { return e.kind }

// GRPCStatus lets status.FromError see the original status.
func (e *wireError) GRPCStatus() *status.Status { return e.st }

// NewWatchEnded describes how a watch of a WatchService stream ended: err
// nil for a watch the client cancelled.
func NewWatchEnded(err error) *WatchEnded {
	s := Status(err)
	if s == nil {
		return &WatchEnded{}
	}
	reason, field, _ := Reason(s)
	if s.Code() == codes.OK {
		reason = ""
	}
	return &WatchEnded{Code: int32(s.Code()), Message: s.Message(), Reason: reason, Field: field}
}

// Err returns the error the watch ended with, matched by errors.Is as the
// error of a call would be; nil for a watch the client cancelled.
func (x *WatchEnded) Err() error {
	if x.GetCode() == int32(codes.OK) {
		return nil
	}
	s := status.New(codes.Code(x.GetCode()), x.GetMessage())
	if x.GetReason() != "" {
		info := &errdetails.ErrorInfo{Reason: x.GetReason(), Domain: ErrorDomain}
		if x.GetField() != "" {
			info.Metadata = map[string]string{"field": x.GetField()}
		}
		if d, err := s.WithDetails(info); err == nil {
			s = d
		}
	}
	return Error(s.Err())
}
