package junctionv1_test

import (
	"errors"
	"fmt"
	"testing"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/model"
)

// A field error survives the wire: the same text, field and kind.
func TestFieldErrorRoundTrip(t *testing.T) {
	sent := model.Invalid("check.rise", "%d is out of range 1..100", 500)
	got := pb.Error(pb.Status(sent).Err())
	var fe *model.FieldError
	if !errors.As(got, &fe) || fe.Field != "check.rise" || !errors.Is(got, model.ErrInvalidArgument) || got.Error() != sent.Error() {
		t.Fatalf("sent %q, got %q (%#v)", sent, got, got)
	}
}

// How a multiplexed watch ended survives the wire as a call's error does:
// its kind, field and text; a cancelled watch ends with no error.
func TestWatchEndedRoundTrip(t *testing.T) {
	for _, sent := range []error{
		model.Invalid("revision", "must not be negative"),
		fmt.Errorf("token a1 may not read service x: %w", model.ErrPermissionDenied),
		fmt.Errorf("watch not established: %w", model.ErrUnavailable),
	} {
		got := pb.NewWatchEnded(sent).Err()
		if model.Kind(got) != model.Kind(sent) || got.Error() != sent.Error() || model.FieldOf(got) != model.FieldOf(sent) {
			t.Errorf("sent %q (%v), got %q (%v)", sent, model.Kind(sent), got, model.Kind(got))
		}
	}
	if err := pb.NewWatchEnded(nil).Err(); err != nil {
		t.Errorf("a cancelled watch ended with %v", err)
	}
}
