package nacos_test

import (
	"context"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/nacos"
	"github.com/junctionhq/junction/conformance"
	"github.com/junctionhq/junction/conformance/servers"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		gatewayHelper()
		return
	}
	if code := servers.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type harness struct{ d *nacos.Driver }

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }
func (h *harness) HistoryWindow() int                    { return historyWindow }

const historyWindow = 50

func open(t testing.TB, addr, query string) *nacos.Driver {
	t.Helper()
	u, err := url.Parse("nacos://" + addr + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nacos.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	d, err := nacos.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// The shared contract, on the Nacos protocol served by Polaris 1.18.1.
func TestConformance(t *testing.T) {
	p := servers.NeedPolaris(t)
	t.Logf("server: Nacos protocol served by Polaris %s", servers.PolarisVersion)
	conformance.Run(t, &harness{d: open(t, p.Addr, "watch-history=50&cas=check")})
}

func nacosURL(addr string) (*url.URL, error) { return url.Parse("nacos://" + addr) }
