package ui_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/gateway"
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
	p.waitFor(`document.querySelector('tr[data-service="pay"]')?.textContent.includes('1 / 1')`, 5*time.Second)
	// The list is live too: its counts follow the watch stream.
	s.api(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances",
		`{"id":"c","ip":"10.0.0.3","port":80,"healthy":false}`, 200, nil)
	took := p.waitFor(`document.querySelector('tr[data-service="pay"]')?.textContent.includes('1 / 2')`, 5*time.Second)
	t.Logf("the list's counts changed %v after the API answered", took)
	p.shot("services")
	p.click(`tr[data-service="pay"] a`)
	p.waitFor(`!!document.querySelector('[data-instance="a"]') && document.querySelector('[data-live]').dataset.live === 'live'`, 5*time.Second)
	s.api(t, "POST", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances",
		`{"id":"b","ip":"10.0.0.2","port":80}`, 200, nil)
	took = p.waitFor(`!!document.querySelector('[data-instance="b"]')`, time.Second)
	t.Logf("a registration appeared in the page %v after the API answered", took)
	if got := p.text(`[data-testid="counts"]`); got != "2 healthy / 3 total" {
		t.Errorf("counts %q", got)
	}
	s.api(t, "DELETE", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances/b", "", 200, nil)
	p.waitFor(`!document.querySelector('[data-instance="b"]')`, 5*time.Second)
}

const payPath = "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/instances"

type instance struct {
	ID       string            `json:"id"`
	Weight   float64           `json:"weight"`
	Enabled  bool              `json:"enabled"`
	Metadata map[string]string `json:"metadata"`
}

func (s *server) instances(t *testing.T) map[string]instance {
	t.Helper()
	var r struct{ Instances []instance }
	s.api(t, "GET", payPath, "", 200, &r)
	out := map[string]instance{}
	for _, i := range r.Instances {
		out[i.ID] = i
	}
	return out
}

// A weight, a maintenance toggle and metadata set in the page are what the
// API reads; the list is driven from the keyboard; deregistering asks
// first, and Escape cancels.
func TestConsoleInstanceActions(t *testing.T) {
	s := startServer(t)
	for _, id := range []string{"a", "b"} {
		s.api(t, "POST", payPath, fmt.Sprintf(`{"id":%q,"ip":"10.0.0.1","port":80}`, id), 200, nil)
	}
	p := openPage(t, s)
	p.goTo("#/services/DEFAULT_GROUP/pay")
	p.waitFor(`!!document.querySelector('[data-instance="b"]')`, 5*time.Second)
	// The keyboard: focus the list, arrow down twice selects b.
	p.click(`[role="grid"]`)
	p.run(chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
	p.waitFor(`document.querySelector('[data-instance="b"]').getAttribute('aria-selected') === 'true'`, 2*time.Second)
	p.shot("service")

	p.fill(`input[name="weight"]`, "42")
	p.button("Set weight")
	p.waitFor(`document.querySelector('[data-instance="b"]').textContent.includes('w 42')`, 5*time.Second)
	if w := s.instances(t)["b"].Weight; w != 42 {
		t.Errorf("weight set in the page; the API reads %v", w)
	}
	p.button("Disable (maintenance)")
	p.waitFor(`document.querySelector('[data-instance="b"]').textContent.includes('maintenance')`, 5*time.Second)
	if s.instances(t)["b"].Enabled {
		t.Error("maintenance set in the page; the API reads the instance enabled")
	}
	p.fill(`textarea[name="metadata"]`, "zone=a\nversion=2")
	p.button("Save metadata")
	deadline := time.Now().Add(5 * time.Second)
	for s.instances(t)["b"].Metadata["version"] != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("metadata saved in the page; the API reads %v", s.instances(t)["b"].Metadata)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.button("Enable")
	p.waitFor(`document.querySelector('[data-instance="b"]').textContent.includes('enabled')`, 5*time.Second)

	// Deregister: the dialog first; Escape cancels, and nothing is removed.
	p.button("Deregister…")
	p.waitFor(`document.querySelector('dialog').open`, 2*time.Second)
	p.run(chromedp.KeyEvent(kb.Escape))
	p.waitFor(`!document.querySelector('dialog').open`, 2*time.Second)
	if _, ok := s.instances(t)["b"]; !ok {
		t.Fatal("cancelled deregistration removed the instance")
	}
	p.button("Deregister…")
	p.button("Deregister")
	p.waitFor(`!document.querySelector('[data-instance="b"]')`, 5*time.Second)
	if _, ok := s.instances(t)["b"]; ok {
		t.Error("deregistered in the page; the API still lists it")
	}

	// The protect threshold.
	p.fill(`input[name="protect-threshold"]`, "0.5")
	p.run(chromedp.Click(`//form[@aria-label="Service settings"]//button`, chromedp.NodeVisible))
	p.waitFor(`document.body.textContent.includes('Saved.')`, 5*time.Second)
	var st struct{ ProtectThreshold float64 }
	s.api(t, "GET", "/v1/namespaces/public/groups/DEFAULT_GROUP/services/pay/settings", "", 200, &st)
	if st.ProtectThreshold != 0.5 {
		t.Errorf("protect threshold %v", st.ProtectThreshold)
	}
}

// A service with 10,000 instances renders in under 2 s, and the page holds
// only the rows in view.
func TestConsoleTenThousandInstances(t *testing.T) {
	s := startServer(t)
	const n = 10000
	var wg sync.WaitGroup
	ids := make(chan int)
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				body := fmt.Sprintf(`{"id":"i%05d","ip":"10.%d.%d.%d","port":80}`, i, i>>16, i>>8&255, i&255)
				resp, err := http.Post(s.base+payPath, "application/json", strings.NewReader(body))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("register %d: %s", i, resp.Status)
					}
				}
				if err != nil {
					errs <- err
					for range ids { // drain: the sender must not block
					}
					return
				}
			}
		})
	}
	for i := range n {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	// The gateway follows the service already (as it does once anyone
	// watches it): the time measured is the page's, not a first snapshot's.
	warm, err := http.Get(s.base + payPath + ":watch")
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Body.Close()
	p := openPage(t, s)
	start := time.Now()
	p.goTo("#/services/DEFAULT_GROUP/pay")
	p.waitFor(fmt.Sprintf(`document.querySelector('[data-testid="counts"]')?.textContent === '%d healthy / %d total' && !!document.querySelector('[data-instance="i00000"]')`, n, n), 10*time.Second)
	took := time.Since(start)
	t.Logf("10,000 instances rendered %v after the navigation (race detector: %v)", took, raceEnabled)
	// The bound is the issue's, for a real build; under the race detector
	// the in-process server encodes the 10,000 several times slower.
	bound := 2 * time.Second
	if raceEnabled {
		bound *= 3
	}
	if took > bound {
		t.Errorf("10,000 instances took %v to render; the bound is %v", took, bound)
	}
	var rows int
	if err := json.Unmarshal(p.eval(`document.querySelectorAll('[data-instance]').length`), &rows); err != nil {
		t.Fatal(err)
	}
	if rows > 40 {
		t.Errorf("%d instance rows in the page: the list is not virtual", rows)
	}
	// Scrolling to the end shows the last instance.
	p.eval(`(() => { const g = document.querySelector('[role="grid"]'); g.scrollTop = g.scrollHeight; return true })()`)
	p.waitFor(fmt.Sprintf(`!!document.querySelector('[data-instance="i%05d"]')`, n-1), 5*time.Second)
}

const appPath = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/app.json"

type config struct {
	Content     string `json:"content"`
	ContentType string `json:"contentType"`
	Revision    string `json:"revision"`
}

func (s *server) config(t *testing.T) config {
	t.Helper()
	var r struct{ Config config }
	s.api(t, "GET", appPath, "", 200, &r)
	return r.Config
}

// A config written in the editor: invalid JSON shows its error at the
// right line; the diff comes before the publish; what is published is what
// the API reads.
func TestConsoleConfigEditor(t *testing.T) {
	s := startServer(t)
	p := openPage(t, s)
	p.goTo("#/configs")
	p.fill(`input[name="new-data-id"]`, "app.json")
	p.button("New config")
	p.waitFor(`document.body.textContent.includes('new: not yet published')`, 5*time.Second)
	p.fill(`select[name="content-type"]`, "json")
	p.fill(`textarea[name="content"]`, "{\n  \"a\": 1,\n  \"b\": ,\n  \"c\": 3\n}")
	p.button("Review changes…")
	p.button("Publish")
	p.waitFor(`!!document.querySelector('[data-line]')`, 5*time.Second)
	var line int
	_ = json.Unmarshal(p.eval(`Number(document.querySelector('[data-line]').dataset.line)`), &line)
	if line != 3 {
		t.Errorf("the error is shown at line %d; the bad value is on line 3", line)
	}
	if got := p.text(`.gutter .bad`); got != "3" {
		t.Errorf("the gutter marks line %q", got)
	}
	p.shot("config-error")
	p.fill(`textarea[name="content"]`, "{\n  \"a\": 1,\n  \"b\": 2\n}")
	p.fill(`input[name="message"]`, "first")
	p.button("Review changes…")
	diff := p.text(`pre.diff`)
	if !strings.Contains(diff, `+  "b": 2`) || !strings.Contains(diff, "/dev/null") {
		t.Errorf("the review shows %q", diff)
	}
	p.shot("config-review")
	p.button("Publish")
	p.waitFor(`document.body.textContent.includes('revision ')`, 5*time.Second)
	if c := s.config(t); c.Content != "{\n  \"a\": 1,\n  \"b\": 2\n}" || c.ContentType != "json" {
		t.Errorf("published in the page; the API reads %+v", c)
	}
	// A change shows as a diff against the stored version.
	p.fill(`textarea[name="content"]`, "{\n  \"a\": 1,\n  \"b\": 3\n}")
	p.button("Review changes…")
	diff = p.text(`pre.diff`)
	if !strings.Contains(diff, `-  "b": 2`) || !strings.Contains(diff, `+  "b": 3`) {
		t.Errorf("the review of a change shows %q", diff)
	}
	p.button("Back to editing")
	// Delete asks first.
	p.button("Delete…")
	p.button("Cancel")
	s.config(t)
	p.button("Delete…")
	p.run(chromedp.Click(`//dialog//button[normalize-space()="Delete"]`, chromedp.NodeVisible))
	p.waitFor(`document.body.textContent.includes('new: not yet published')`, 5*time.Second)
	s.api(t, "GET", appPath, "", 404, nil)
}

// Two writers at once: the second sees both versions and chooses.
func TestConsoleConflict(t *testing.T) {
	s := startServer(t)
	s.api(t, "PUT", appPath+"?type=json", `{"v": 1}`, 200, nil)
	p := openPage(t, s)
	p.goTo("#/configs/DEFAULT_GROUP/app.json")
	p.waitFor(`document.querySelector('textarea[name="content"]')?.value === '{"v": 1}'`, 5*time.Second)
	p.fill(`textarea[name="content"]`, `{"v": "mine"}`)
	s.api(t, "PUT", appPath, `{"v": "theirs"}`, 200, nil) // the other writer
	p.button("Review changes…")
	p.button("Publish")
	p.waitFor(`!!document.querySelector('[aria-label="Conflict"]')`, 5*time.Second)
	if got := p.text(`[aria-label="Their version"]`); got != `{"v": "theirs"}` {
		t.Errorf("theirs shows %q", got)
	}
	if got := p.text(`[aria-label="Your version"]`); got != `{"v": "mine"}` {
		t.Errorf("yours shows %q", got)
	}
	if c := s.config(t); c.Content != `{"v": "theirs"}` {
		t.Fatalf("the conflicting publish overwrote theirs: %q", c.Content)
	}
	p.shot("config-conflict")
	p.button("Publish mine over theirs")
	p.waitFor(`!document.querySelector('[aria-label="Conflict"]')`, 5*time.Second)
	if c := s.config(t); c.Content != `{"v": "mine"}` {
		t.Errorf("after the retry the API reads %q", c.Content)
	}
}

// History: compare any two versions and roll back; the gray panel:
// publish to a label, promote, abort.
func TestConsoleHistoryAndGray(t *testing.T) {
	s := startServer(t)
	for _, v := range []string{"1", "2", "3"} {
		s.api(t, "PUT", appPath+"?type=json&message=v"+v, `{"v": `+v+`}`, 200, nil)
	}
	p := openPage(t, s)
	p.goTo("#/configs/DEFAULT_GROUP/app.json")
	p.button("History")
	p.waitFor(`document.querySelectorAll('tr[data-version]').length === 3`, 5*time.Second)
	p.click(`input[aria-label="compare from version 1"]`)
	p.click(`input[aria-label="compare to version 3"]`)
	p.button("Compare")
	if d := p.text(`pre.diff`); !strings.Contains(d, `-{"v": 1}`) || !strings.Contains(d, `+{"v": 3}`) {
		t.Errorf("diff 1→3 shows %q", d)
	}
	p.shot("config-history")
	p.button("Roll back to 1…")
	p.button("Roll back")
	p.waitFor(`document.querySelectorAll('tr[data-version]').length === 4`, 5*time.Second)
	if c := s.config(t); c.Content != `{"v": 1}` {
		t.Errorf("rolled back to 1; the API reads %q", c.Content)
	}

	p.button("Gray release")
	// Without a rule, nothing is published (it would be a release for all).
	p.fill(`[aria-label="Gray content"]`, `{"v": "everyone?"}`)
	p.button("Publish gray")
	p.waitFor(`document.body.textContent.includes('Name the clients')`, 5*time.Second)
	if c := s.config(t); c.Content != `{"v": 1}` {
		t.Fatalf("a gray without a rule changed the release: %q", c.Content)
	}
	s.api(t, "GET", appPath+"/gray", "", 404, nil)
	p.fill(`input[name="gray-labels"]`, "env=canary")
	p.fill(`[aria-label="Gray content"]`, `{"v": "gray"}`)
	p.button("Publish gray")
	p.waitFor(`!!document.querySelector('[aria-label="Current gray release"]')`, 5*time.Second)
	var g struct {
		Content string
		Rule    struct{ Labels map[string]string }
	}
	s.api(t, "GET", appPath+"/gray", "", 200, &g)
	if g.Content != `{"v": "gray"}` || g.Rule.Labels["env"] != "canary" {
		t.Errorf("gray published in the page; the API reads %+v", g)
	}
	if c := s.config(t); c.Content != `{"v": 1}` {
		t.Errorf("a client without the label reads %q", c.Content)
	}
	p.shot("config-gray")
	p.button("Abort")
	p.waitFor(`!document.querySelector('[aria-label="Current gray release"]') && document.body.textContent.includes('Aborted')`, 5*time.Second)
	s.api(t, "GET", appPath+"/gray", "", 404, nil)
	p.fill(`input[name="gray-labels"]`, "env=canary")
	p.fill(`[aria-label="Gray content"]`, `{"v": "gray2"}`)
	p.button("Publish gray")
	p.button("Promote to everyone")
	p.waitFor(`document.body.textContent.includes('Promoted')`, 5*time.Second)
	if c := s.config(t); c.Content != `{"v": "gray2"}` {
		t.Errorf("promoted; the API reads %q", c.Content)
	}
	p.button("Listeners")
	p.waitFor(`document.body.textContent.includes('listening')`, 5*time.Second)

	// A gray whose rule matches this browser (its address): the editor
	// still starts from the release, which a publish replaces.
	s.api(t, "PUT", appPath+"?grayIps=127.0.0.1", `{"v": "for this browser"}`, 200, nil)
	p.run(chromedp.Reload())
	p.waitFor(`document.querySelector('textarea[name="content"]')?.value === '{"v": "gray2"}'`, 5*time.Second)
}

// Access control, from the attacker's side too: no token and a wrong token
// are refused and explained; a read-only token sees the write actions
// disabled, and what it may not read is explained; a management token may
// act; logging out forgets the token.
func TestConsoleAccess(t *testing.T) {
	s := startServer(t, func(c *gateway.Config) { c.Auth = true })
	var boot struct{ Secret string }
	s.api(t, "POST", "/v1/acl/bootstrap", "", 200, &boot)
	s.token = boot.Secret
	s.api(t, "POST", "/v1/acl/policies", `{"rules":"name: readers\nrules:\n  - namespace: public\n    service: \"*\"\n    access: read\n  - namespace: public\n    config: \"*\"\n    access: read\n"}`, 200, nil)
	var reader struct{ Secret string }
	s.api(t, "POST", "/v1/acl/tokens", `{"description":"reader","policies":["readers"]}`, 200, &reader)
	s.api(t, "POST", payPath, `{"id":"a","ip":"10.0.0.1","port":80}`, 200, nil)
	s.api(t, "PUT", appPath+"?type=json", `{"v": 1}`, 200, nil)
	s.api(t, "PUT", "/v1/namespaces/secret/groups/DEFAULT_GROUP/configs/keys", `k`, 200, nil)

	p := openPage(t, s)
	p.waitFor(`!!document.querySelector('#token-input')`, 5*time.Second)
	p.waitFor(`document.body.textContent.includes('This needs a token')`, 5*time.Second)
	p.shot("login")

	p.fill(`#token-input`, "not-a-token")
	p.button("Log in")
	p.waitFor(`document.body.textContent.includes('does not know this token')`, 5*time.Second)
	var kept string
	_ = json.Unmarshal(p.eval(`sessionStorage.getItem('junction.token') || ''`), &kept)
	if kept != "" {
		t.Errorf("a refused token is kept: %q", kept)
	}

	p.fill(`#token-input`, reader.Secret)
	p.button("Log in")
	p.waitFor(`document.body.textContent.includes('Token: reader')`, 5*time.Second)
	p.goTo("#/services/DEFAULT_GROUP/pay")
	p.click(`[data-instance="a"]`)
	p.waitFor(`[...document.querySelectorAll('button')].some(b => b.textContent.trim() === 'Set weight' && b.disabled)`, 5*time.Second)
	if off, why := p.disabled("Set weight"); !off || !strings.Contains(why, "may not change this service") {
		t.Errorf("a read-only token: Set weight disabled %v, title %q", off, why)
	}
	p.shot("denied")
	p.goTo("#/configs/DEFAULT_GROUP/app.json")
	p.waitFor(`[...document.querySelectorAll('button')].some(b => b.textContent.trim() === 'Review changes…' && b.disabled)`, 5*time.Second)
	// What the token may not read: explained, never shown.
	p.goTo("#/configs/DEFAULT_GROUP/keys")
	p.fill(`input[name="namespace"]`, "secret")
	p.waitFor(`document.body.textContent.includes('may not read this config') && document.body.textContent.includes('Your token may not do this')`, 5*time.Second)
	var editor bool
	_ = json.Unmarshal(p.eval(`!!document.querySelector('textarea[name="content"]')`), &editor)
	if editor {
		t.Error("the page opens an editor on what the token may not read")
	}
	p.fill(`input[name="namespace"]`, "public")

	p.button("Log out")
	p.waitFor(`!!document.querySelector('#token-input')`, 5*time.Second)
	_ = json.Unmarshal(p.eval(`sessionStorage.getItem('junction.token') || ''`), &kept)
	if kept != "" {
		t.Errorf("logged out, the token is still kept")
	}
	p.fill(`#token-input`, boot.Secret)
	p.button("Log in")
	p.waitFor(`document.body.textContent.includes('(management)')`, 5*time.Second)
	p.goTo("#/services/DEFAULT_GROUP/pay")
	p.click(`[data-instance="a"]`)
	p.waitFor(`[...document.querySelectorAll('button')].some(b => b.textContent.trim() === 'Set weight' && !b.disabled)`, 5*time.Second)
}

// The overview: the store, the gateway that runs the health checks, the
// members with the leader reachable, and a report's measured figures
// beside the declared capabilities.
func TestConsoleOverview(t *testing.T) {
	s := startServer(t, func(c *gateway.Config) {
		c.GatewayID = "gw-1"
		c.Measured = &pb.MeasuredGuarantees{Target: "raft+gateway", Label: "built-in Raft store", Started: timestamppb.Now(),
			Results: []*pb.MeasuredGuarantee{{Scenario: "cas", Rule: "a compare-and-set succeeds once", Verdict: "pass", Figures: "winners 1"}}}
	})
	p := openPage(t, s)
	p.waitFor(`document.querySelector('[data-testid="health-runner"]')?.textContent === 'gw-1'`, 10*time.Second)
	if got := p.text(`tr[data-scenario="cas"]`); !strings.Contains(got, "pass") || !strings.Contains(got, "winners 1") {
		t.Errorf("measured row: %q", got)
	}
	p.waitFor(`[...document.querySelectorAll('[aria-label="Cluster members"] td')].some(td => td.textContent === 'leader')`, 5*time.Second)
	if got := p.text(`[aria-label="Cluster members"] tbody tr`); !strings.Contains(got, "yes") {
		t.Errorf("the member row %q: the node that answered is reachable", got)
	}
	p.shot("overview")
}

// Every control of every screen has a name a screen reader can say, and
// the screens are reached from the keyboard.
func TestConsoleAccessibility(t *testing.T) {
	s := startServer(t)
	s.api(t, "POST", payPath, `{"id":"a","ip":"10.0.0.1","port":80}`, 200, nil)
	s.api(t, "PUT", appPath+"?type=json", `{"v": 1}`, 200, nil)
	p := openPage(t, s)
	const unnamed = `[...document.querySelectorAll('button, input, select, textarea, a[href], [role="grid"]')]
		.filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.textContent.trim() || e.title))
		.map(e => e.outerHTML.slice(0, 120))`
	for _, screen := range []struct{ hash, ready string }{
		{"#/", `!!document.querySelector('[data-testid="backend"]')`},
		{"#/services", `!!document.querySelector('tr[data-service="pay"]')`},
		{"#/services/DEFAULT_GROUP/pay", `!!document.querySelector('[data-instance="a"]')`},
		{"#/configs", `!!document.querySelector('tr[data-config="app.json"]')`},
		{"#/configs/DEFAULT_GROUP/app.json", `!!document.querySelector('textarea[name="content"]')`},
	} {
		p.goTo(screen.hash)
		p.waitFor(screen.ready, 5*time.Second)
		if screen.hash == "#/services/DEFAULT_GROUP/pay" {
			p.click(`[data-instance="a"]`)
			p.waitFor(`!!document.querySelector('input[name="weight"]')`, 5*time.Second)
		}
		var bad []string
		if err := json.Unmarshal(p.eval(unnamed), &bad); err != nil {
			t.Fatal(err)
		}
		for _, b := range bad {
			t.Errorf("%s: a control without a name: %s", screen.hash, b)
		}
	}
	// The keyboard: Tab from the top reaches the screens' links, and
	// Enter follows one.
	p.goTo("#/")
	p.waitFor(`!!document.querySelector('[data-testid="backend"]')`, 5*time.Second)
	p.eval(`document.activeElement.blur(), true`)
	for range 10 {
		p.run(chromedp.KeyEvent(kb.Tab))
		var at string
		_ = json.Unmarshal(p.eval(`document.activeElement.textContent.trim()`), &at)
		if at == "Configs" {
			p.run(chromedp.KeyEvent(kb.Enter))
			p.waitFor(`location.hash === '#/configs'`, 5*time.Second)
			return
		}
	}
	t.Error("ten Tabs from the top of the page never reached the Configs link")
}

// A store that goes away shows as a banner, and the list as its error.
func TestConsoleStoreUnavailable(t *testing.T) {
	s := startServer(t)
	p := openPage(t, s)
	p.goTo("#/services")
	p.waitFor(`!!document.querySelector('#services-title')`, 5*time.Second)
	if err := s.store.Close(); err != nil {
		t.Fatal(err)
	}
	p.button("Refresh")
	p.waitFor(`document.querySelector('.banner')?.textContent.includes('The store is unavailable')`, 5*time.Second)
	p.waitFor(`document.querySelector('[role="alert"].error')?.textContent.includes('Try again')`, 5*time.Second)
}

// The instance list filters by cluster and by health, and the panel shows
// an instance's check and its recent results.
func TestConsoleFiltersAndChecks(t *testing.T) {
	s := startServer(t)
	s.api(t, "POST", payPath, `{"id":"a","ip":"10.0.0.1","port":80,"cluster":"east"}`, 200, nil)
	s.api(t, "POST", payPath, `{"id":"b","ip":"10.0.0.2","port":80,"cluster":"west","healthy":false}`, 200, nil)
	// A check of a port nobody listens on: it fails.
	s.api(t, "POST", payPath, `{"id":"c","ip":"127.0.0.1","port":1,"cluster":"west","check":{"kind":"tcp","interval":"0.2s","timeout":"0.1s"}}`, 200, nil)
	p := openPage(t, s)
	p.goTo("#/services/DEFAULT_GROUP/pay")
	p.waitFor(`document.querySelectorAll('[data-instance]').length === 3`, 5*time.Second)
	p.fill(`select[name="cluster"]`, "west")
	p.waitFor(`document.querySelectorAll('[data-instance]').length === 2 && !document.querySelector('[data-instance="a"]')`, 5*time.Second)
	p.fill(`select[name="health"]`, "unhealthy")
	p.waitFor(`!!document.querySelector('[data-instance="b"]')`, 5*time.Second)
	p.fill(`select[name="cluster"]`, "")
	p.fill(`select[name="health"]`, "healthy")
	p.waitFor(`!document.querySelector('[data-instance="b"]') && !!document.querySelector('[data-instance="a"]')`, 5*time.Second)
	p.fill(`select[name="health"]`, "")
	p.click(`[data-instance="c"]`)
	p.waitFor(`document.querySelector('aside')?.textContent.includes('tcp 127.0.0.1:1')`, 10*time.Second)
	p.waitFor(`!!document.querySelector('aside .results li.bad')`, 10*time.Second)
}
