package model

// EventType says what an Event reports.
type EventType int

// Event types.
const (
	// EventPut: an instance or config was created or changed.
	EventPut EventType = iota + 1
	// EventDelete: an instance or config was removed; the event carries the
	// last known value.
	EventDelete
	// EventReset: the watcher cannot prove it saw every change, so the event
	// carries the full current state of what is watched at its revision.
	// Subscribers replace their view with it. A watch started without a
	// revision begins with a RESET too.
	EventReset
)

// String returns PUT, DELETE or RESET.
func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	case EventReset:
		return "RESET"
	}
	return "UNKNOWN"
}

// Event is one change seen by a watch.
type Event struct {
	Type EventType
	// Revision is the store revision of the change (of the state, for RESET).
	Revision int64
	// Service is set on instance events.
	Service ServiceKey
	// Instance is the new value (PUT) or the last value (DELETE) of an
	// instance event.
	Instance *Instance
	// Config is the new value (PUT) or the last value (DELETE) of a config
	// event; on a config RESET it is the current value, nil when absent.
	Config *Config
	// ConfigKey is set on config events, including a RESET of an absent item.
	ConfigKey ConfigKey
	// Instances is the full instance set of a service RESET (possibly empty).
	Instances []Instance
}

// View is a watcher's copy of what it watches, kept by applying the
// watch's events in order: the instances of a service by id, or one config
// item. The zero View is empty and ready to use.
type View struct {
	// Instances are a service's instances by id.
	Instances map[string]Instance
	// Config is a config item's value, nil while it is absent.
	Config *Config
	// Revision is the revision of the last event applied.
	Revision int64
}

// Apply applies e: a RESET replaces the whole view, a PUT sets what it
// carries, a DELETE removes it.
func (v *View) Apply(e Event) {
	if v.Instances == nil {
		v.Instances = map[string]Instance{}
	}
	v.Revision = max(v.Revision, e.Revision)
	switch e.Type {
	case EventReset:
		clear(v.Instances)
		for _, i := range e.Instances {
			v.Instances[i.ID] = i
		}
		v.Config = e.Config
	case EventPut:
		if e.Instance != nil {
			v.Instances[e.Instance.ID] = *e.Instance
		} else {
			v.Config = e.Config
		}
	case EventDelete:
		if e.Instance != nil {
			delete(v.Instances, e.Instance.ID)
		} else {
			v.Config = nil
		}
	}
}
