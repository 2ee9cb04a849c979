package ui_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The first load: every file the console needs, as transferred (gzipped),
// within the 150 KB, and the overview showing the store.
func TestConsoleFirstLoad(t *testing.T) {
	s := startServer(t)
	ctx, cancel := chromedp.NewContext(startBrowser(t))
	defer cancel()
	var mu sync.Mutex
	urls := map[network.RequestID]string{}
	var total int64
	var files []string
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			urls[ev.RequestID] = ev.Request.URL
		case *network.EventLoadingFinished:
			if u := urls[ev.RequestID]; strings.Contains(u, "/ui/") {
				total += int64(ev.EncodedDataLength)
				files = append(files, fmt.Sprintf("%s %d", u[strings.Index(u, "/ui/"):], int64(ev.EncodedDataLength)))
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.base+"/ui/")); err != nil {
		t.Fatal(err)
	}
	backend, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="backend"]`), chromedp.NodeVisible))
	if err != nil {
		t.Fatal(err)
	}
	if backend != "raft" {
		t.Errorf("overview shows backend %q, want raft", backend)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("first load: %d bytes transferred (gzipped, headers included) in %d files: %s", total, len(files), strings.Join(files, ", "))
	if len(files) < 6 {
		t.Errorf("saw only %d of the console's files load: %v", len(files), files)
	}
	if total > 150<<10 {
		t.Errorf("first load transfers %d bytes; the budget is 150 KB", total)
	}
}

// An instance registered through the API appears in the open page within
// a second, without a reload; deregistered, it goes.
func TestConsoleInstancesLive(t *testing.T) {
	s := startServer(t)
	p := openPage(t, s)
	s.api(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances",
		`{"id":"a","ip":"10.0.0.1","port":80}`, 200, nil)
	p.goTo("#/services")
	p.waitFor(`!!document.querySelector('tr[data-service="pay"]')`, 5*time.Second)
	p.shot("services")
	p.click(`tr[data-service="pay"] a`)
	p.waitFor(`!!document.querySelector('[data-instance="a"]') && document.querySelector('[data-live]').dataset.live === 'live'`, 5*time.Second)
	s.api(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances",
		`{"id":"b","ip":"10.0.0.2","port":80}`, 200, nil)
	took := p.waitFor(`!!document.querySelector('[data-instance="b"]')`, time.Second)
	t.Logf("a registration appeared in the page %v after the API answered", took)
	if got := p.text(`[data-testid="counts"]`); got != "2 healthy / 2 total" {
		t.Errorf("counts %q", got)
	}
	s.api(t, "DELETE", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances/b", "", 200, nil)
	p.waitFor(`!document.querySelector('[data-instance="b"]')`, time.Second)
}
