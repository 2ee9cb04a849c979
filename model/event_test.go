package model

import (
	"reflect"
	"testing"
)

// A view follows PUTs and DELETEs of instances and configs, and a RESET
// replaces all of it, an empty RESET included.
func TestViewApply(t *testing.T) {
	a, b := Instance{ID: "a", Port: 1}, Instance{ID: "b", Port: 2}
	a2 := Instance{ID: "a", Port: 3}
	var v View
	steps := []struct {
		e    Event
		want map[string]Instance
		rev  int64
	}{
		{Event{Type: EventReset, Revision: 5, Instances: []Instance{a}}, map[string]Instance{"a": a}, 5},
		{Event{Type: EventPut, Revision: 6, Instance: &b}, map[string]Instance{"a": a, "b": b}, 6},
		{Event{Type: EventPut, Revision: 7, Instance: &a2}, map[string]Instance{"a": a2, "b": b}, 7},
		{Event{Type: EventDelete, Revision: 8, Instance: &b}, map[string]Instance{"a": a2}, 8},
		{Event{Type: EventReset, Revision: 9}, map[string]Instance{}, 9},
	}
	for n, s := range steps {
		v.Apply(s.e)
		if !reflect.DeepEqual(v.Instances, s.want) || v.Revision != s.rev {
			t.Fatalf("after step %d (%v): %v at %d, want %v at %d", n, s.e.Type, v.Instances, v.Revision, s.want, s.rev)
		}
	}
	c1, c2 := Config{Content: []byte("1")}, Config{Content: []byte("2")}
	var cv View
	for n, s := range []struct {
		e    Event
		want *Config
	}{
		{Event{Type: EventReset, Revision: 1}, nil},
		{Event{Type: EventPut, Revision: 2, Config: &c1}, &c1},
		{Event{Type: EventPut, Revision: 3, Config: &c2}, &c2},
		{Event{Type: EventDelete, Revision: 4, Config: &c2}, nil},
		{Event{Type: EventReset, Revision: 5, Config: &c1}, &c1},
	} {
		cv.Apply(s.e)
		if cv.Config != s.want {
			t.Fatalf("config after step %d (%v): %v, want %v", n, s.e.Type, cv.Config, s.want)
		}
	}
}
