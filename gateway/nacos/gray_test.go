package nacos_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// Nacos beta (betaIps) and tagged publishes are Junction's gray releases:
// the clients at a beta address, and the queries asking for the tag, get
// the gray content, by query and by push, and the other clients never do;
// an abort through Junction's API sends the Nacos client back to the
// release, and a delete through Nacos ends the gray release with the item.
func TestNacosBetaRelease(t *testing.T) {
	e := start(t)
	c := configClient(t, e) // at 127.0.0.1, like every client here
	item := vo.ConfigParam{DataId: "beta.yaml", Group: "DEFAULT_GROUP", Type: "yaml"}
	publish := func(content, beta, tag string) {
		t.Helper()
		p := item
		p.Content, p.BetaIps, p.Tag = content, beta, tag
		if ok, err := c.PublishConfig(p); err != nil || !ok {
			t.Fatalf("publish %q (beta %q, tag %q): %v %v", content, beta, tag, ok, err)
		}
	}
	get := func() string {
		t.Helper()
		got, err := c.GetConfig(item)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	const path = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/beta.yaml"
	publish("v: 1\n", "", "")
	heard := make(chan string, 16)
	listen := item
	listen.OnChange = func(_, _, _, data string) { heard <- data }
	if err := c.ListenConfig(listen); err != nil {
		t.Fatal(err)
	}
	await := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := time.After(within)
		for {
			select {
			case got := <-heard:
				if got == want {
					return time.Since(start)
				}
			case <-deadline:
				t.Fatalf("the listener never heard %q within %v", want, within)
			}
		}
	}

	// A beta for other addresses: this client keeps the release.
	publish("v: other\n", "10.9.9.9,10.9.9.10", "")
	if code, body := e.restCall(t, "GET", path+"/gray", ""); code != 200 || !strings.Contains(body, `"10.9.9.9"`) || !strings.Contains(body, `v: other`) {
		t.Fatalf("Junction's API shows the beta as %d %s", code, body)
	}
	if got := get(); got != "v: 1\n" {
		t.Errorf("a client outside the beta reads %q", got)
	}
	// A beta for this client's address replaces it: the client hears of
	// it (its first news may come by its poll), and reads it.
	publish("v: 2\n", "127.0.0.1", "")
	await("v: 2\n", 15*time.Second)
	if got := get(); got != "v: 2\n" {
		t.Errorf("a client at the beta address reads %q", got)
	}
	if code, body := e.nacosCall(t, "GET", "/nacos/v1/cs/configs?dataId=beta.yaml&group=DEFAULT_GROUP", nil); code != 200 || body != "v: 2\n" {
		t.Errorf("the HTTP API at the beta address: %d %q", code, body)
	}
	if _, body := e.restCall(t, "GET", path+"?release=true", ""); !strings.Contains(body, `v: 1`) {
		t.Errorf("the release changed under the beta: %s", body)
	}
	// Aborted through Junction's API: pushed back to the release.
	time.Sleep(300 * time.Millisecond) // the client marks the item synced after telling its listener
	if code, body := e.restCall(t, "DELETE", path+"/gray", ""); code != 200 {
		t.Fatal(code, body)
	}
	took := await("v: 1\n", 5*time.Second)
	t.Logf("an abort through Junction's API reached the Nacos listener %v later", took)

	// A tagged publish: only the queries asking for the tag get it.
	publish("v: canary\n", "", "canary")
	r := dialRaw(t, e, true)
	if _, m := r.call("ConfigQueryRequest", `{"group":"DEFAULT_GROUP","dataId":"beta.yaml","tag":"canary"}`); m["content"] != "v: canary\n" {
		t.Errorf("a query for the tag: %v", m)
	}
	if _, m := r.call("ConfigQueryRequest", `{"group":"DEFAULT_GROUP","dataId":"beta.yaml","tag":"other"}`); m["content"] != "v: 1\n" {
		t.Errorf("a query for another tag: %v", m)
	}
	if got := get(); got != "v: 1\n" {
		t.Errorf("a query without the tag reads %q", got)
	}

	// Deleted through Nacos: the gray release goes with the item.
	if ok, err := c.DeleteConfig(item); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if code, body := e.restCall(t, "GET", path+"/gray", ""); code != 404 {
		t.Errorf("after the item's delete its gray release stays: %d %s", code, body)
	}
}
