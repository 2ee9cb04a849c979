package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
)

// Driver calls a Junction driver in process: the gateway's work without
// gRPC, protobuf and the network, so that the two side by side show what
// the gateway costs.
type Driver struct {
	b                backends.Backend
	namespace, group string
}

// NewDriver returns a client of b. Close does not close b.
func NewDriver(b backends.Backend, namespace, group string) *Driver {
	return &Driver{b: b, namespace: namespace, group: group}
}

// Prepare implements Client.
func (d *Driver) Prepare(ctx context.Context, workload string, o Options) (Op, func(), error) {
	return prepare(ctx, d, workload, o)
}

// Close implements Client.
func (d *Driver) Close() error { return nil }

func (d *Driver) supports(string) error { return nil }

func (d *Driver) service(name string) model.ServiceKey {
	return model.ServiceKey{Namespace: d.namespace, Group: d.group, Service: name}.WithDefaults()
}

func (d *Driver) config(o Options, k int) model.ConfigKey {
	return model.ConfigKey{Namespace: d.namespace, Group: d.group, DataID: configID(o, k)}.WithDefaults()
}

func (d *Driver) newSession(ctx context.Context) (string, error) {
	s, _, err := d.b.CreateSession(ctx, 30*time.Second)
	return s.ID, err
}

func (d *Driver) closeSession(ctx context.Context, id string) { _, _ = d.b.CloseSession(ctx, id) }

// registerIn does what the gateway does with a RegisterInstance call.
func (d *Driver) registerIn(ctx context.Context, service string, k int64, session string, meta map[string]string) error {
	inst := model.Instance{IP: ip(k), Port: 80, Weight: 1, Healthy: true, Enabled: true, Ephemeral: session != "",
		Session: session, Metadata: meta}
	if err := inst.Normalize(); err != nil {
		return err
	}
	_, err := d.b.Register(ctx, d.service(service), inst)
	return err
}

func (d *Driver) register(ctx context.Context, o Options, k int64, session string) error {
	return d.registerIn(ctx, o.Service, k, session, nil)
}

func (d *Driver) keepAlive(ctx context.Context, session string) error {
	_, err := d.b.KeepAlive(ctx, session)
	return err
}

func (d *Driver) seedList(ctx context.Context, o Options, k int64) error {
	return d.registerIn(ctx, listService(o), k, "", nil)
}

func (d *Driver) list(ctx context.Context, o Options) error {
	_, _, err := d.b.Instances(ctx, d.service(listService(o)), backends.ReadOptions{Stale: o.Stale})
	return err
}

func (d *Driver) putConfig(ctx context.Context, o Options, k int, value string) error {
	_, err := d.b.PutConfig(ctx, model.Config{Key: d.config(o, k), Content: []byte(value)}, model.Precondition{})
	return err
}

func (d *Driver) getConfig(ctx context.Context, o Options, k int) error {
	_, _, err := d.b.GetConfig(ctx, d.config(o, k), backends.ReadOptions{Stale: o.Stale})
	return err
}

// Subscribe implements Fanout by declining: fan-out is the gateway's job
// (its hub feeds every subscriber of a service from one backend watch); the
// driver alone would open one store watch per subscriber, which is not how
// Junction serves watches.
func (d *Driver) Subscribe(context.Context, Options, int, func(string)) error {
	return fmt.Errorf("%w: fan-out is the gateway hub's job (one store watch per service for every subscriber)", ErrUnsupported)
}

// Update implements Fanout.
func (d *Driver) Update(ctx context.Context, o Options, seq string) error {
	return d.registerIn(ctx, o.Service+"-watch", 0xff0001, "", map[string]string{"seq": seq})
}
