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
	"github.com/junctionhq/junction/conformance/servertest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		gatewayHelper()
		return
	}
	if code := servertest.InPrivateNetwork(m); code >= 0 {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

type harness struct {
	d           *nacos.Driver
	addr, query string
}

func (h *harness) Backend(t *testing.T) backends.Backend { return h.d }

// Peer opens a second driver, with connections of its own.
func (h *harness) Peer(t *testing.T) backends.Backend { return open(t, h.addr, h.query) }
func (h *harness) HistoryWindow() int                 { return historyWindow }

const historyWindow = 50

func open(t testing.TB, addr, query string) *nacos.Driver {
	t.Helper()
	return openConfig(t, addr, query, func(*nacos.Config) {})
}

// openConfig opens a driver of the configuration the URL's query gives,
// as edit changes it.
func openConfig(t testing.TB, addr, query string, edit func(*nacos.Config)) *nacos.Driver {
	t.Helper()
	u, err := url.Parse("nacos://" + addr + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := nacos.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	edit(&cfg)
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
	p := servertest.NeedPolaris(t)
	t.Logf("server: Nacos protocol served by Polaris %s", servers.PolarisVersion)
	conformance.Run(t, &harness{d: open(t, p.Addr, "watch-history=50&cas=check"), addr: p.Addr, query: "watch-history=50&cas=check"})
	// What the shared history scenario cannot see through one driver.
	t.Run("HistoryAcrossDrivers", func(t *testing.T) { historyAcrossDrivers(t, p.Addr) })
	t.Run("HistoryWrittenBeforeClose", func(t *testing.T) { historyWrittenBeforeClose(t, p.Addr) })
}

func nacosURL(addr string) (*url.URL, error) { return url.Parse("nacos://" + addr) }

func TestConfigFromURL(t *testing.T) {
	u, _ := url.Parse("nacos://nacos:secret@10.0.0.1:8848,10.0.0.2:8848?namespace=prod&timeout=2s&cas=check&access-key=ak&secret-key=sk")
	cfg, err := nacos.ConfigFromURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 2 || cfg.Servers[1] != "10.0.0.2:8848" || cfg.Username != "nacos" || cfg.Password != "secret" ||
		cfg.PublicNamespace != "prod" || cfg.Timeout != 2*time.Second || cfg.CAS != nacos.CASCheck || cfg.AccessKey != "ak" || cfg.SecretKey != "sk" {
		t.Fatalf("parsed %+v", cfg)
	}
	for _, bad := range []string{"nacos://", "nacos://h:1?cas=maybe", "nacos://h:1?timeout=1ms", "nacos://h:1?colour=blue", "nacos://h:1?watch-history=0", "nacos://h:1?view-idle=100ms", "nacos://h:1?view-idle=soon"} {
		u, _ := url.Parse(bad)
		if _, err := nacos.ConfigFromURL(u); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
