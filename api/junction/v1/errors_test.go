package junctionv1_test

import (
	"errors"
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
