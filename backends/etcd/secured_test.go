package etcd_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/etcd"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servertest"
	"github.com/junctionhq/junction/model"
)

// securedHarness opens drivers by a URL that carries credentials.
type securedHarness struct {
	d   *etcd.Driver
	url string
}

func (h *securedHarness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *securedHarness) Peer(t *testing.T) backends.Backend    { return openURL(t, h.url) }
func (h *securedHarness) HistoryWindow() int                    { return 0 }

func openURL(t *testing.T, raw string) *etcd.Driver {
	t.Helper()
	u, _ := url.Parse(raw)
	cfg, err := etcd.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := etcd.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// An etcd with TLS (client certificates required) and authentication on,
// Junction a user whose role may read and write its prefix only: the
// driver keeps the whole contract; a client without the password, or
// with a wrong one, gets nothing.
func TestSecuredEtcd(t *testing.T) {
	ca := servertest.NewCA(t)
	cert, key := ca.Issue(t, "etcd", 1)
	ccert, ckey := ca.Issue(t, "client", 2)
	ep, _ := servertest.Etcd(t, func(c *embed.Config) {
		for i := range c.ListenClientUrls {
			c.ListenClientUrls[i].Scheme = "https"
			c.AdvertiseClientUrls[i].Scheme = "https"
		}
		c.ClientTLSInfo = transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca.Path("ca.pem"), ClientCertAuth: true}
		// Each client's login checks its password with bcrypt: at the
		// default cost it takes seconds under the race detector, which a
		// one-second session does not outlive. The lowest cost keeps the
		// test about the driver, not bcrypt.
		c.BcryptCost = 4
	})
	tlsInfo := transport.TLSInfo{CertFile: ccert, KeyFile: ckey, TrustedCAFile: ca.Path("ca.pem")}
	tc, err := tlsInfo.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	client := func(user, pass string) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, TLS: tc.Clone(), Username: user, Password: pass, DialTimeout: 5 * time.Second})
		if err != nil && user != "" {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := client("", "")
	const pw = "junction-pw-7f3a"
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "junction"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "junction", "/jsec", clientv3.GetPrefixRangeEnd("/jsec"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "junction", pw); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "junction", "junction"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("setting up etcd auth: %v", err)
		}
	}
	raw := "etcd://junction:" + pw + "@" + ep + "?prefix=/jsec&ca-file=" + ca.Path("ca.pem") + "&cert-file=" + ccert + "&key-file=" + ckey
	d := openURL(t, raw)
	conformance.Run(t, &securedHarness{d: d, url: raw})

	key1 := model.ConfigKey{Namespace: "public", Group: "g", DataID: "db.yaml"}
	if _, err := d.PutConfig(ctx, model.Config{Key: key1, Content: []byte("password: x\n")}, model.Precondition{}); err != nil {
		t.Fatal(err)
	}
	// Without the password (the certificate's CN, "client", is no user),
	// or with a wrong one: nothing.
	anon := client("", "")
	if _, err := anon.Get(ctx, "/jsec", clientv3.WithPrefix()); err == nil {
		t.Error("a client without the password read Junction's keys")
	}
	if _, err := anon.Put(ctx, "/jsec/intruder", "x"); err == nil {
		t.Error("a client without the password wrote under Junction's prefix")
	}
	if c := client("junction", "guess"); c != nil {
		if _, err := c.Get(ctx, "/jsec", clientv3.WithPrefix()); !errors.Is(err, rpctypes.ErrAuthFailed) && err == nil {
			t.Error("a wrong password read Junction's keys")
		}
	}
	// Junction's user has its prefix only.
	if _, err := d.Client().Put(ctx, "/elsewhere", "x"); err == nil {
		t.Error("Junction's user wrote outside its prefix")
	}
	// A plaintext client is refused by the TLS listener.
	if c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 2 * time.Second, Username: "junction", Password: pw}); err == nil {
		defer c.Close()
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		if _, err := c.Get(cctx, "/jsec", clientv3.WithPrefix()); err == nil {
			t.Error("a plaintext client read Junction's keys")
		}
	}
}
