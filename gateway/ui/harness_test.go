package ui_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/gateway"
)

// The browser tests drive Debian's Chromium, headless, through chromedp,
// against a real gateway over a real built-in store. Without Chromium they
// skip, unless JUNCTION_REQUIRE_BROWSER is set (as CI sets it): then they
// fail.
var screenshots = flag.String("ui.screenshots", "", "write a PNG of each console screen into this directory (make console-screenshots: docs/console)")

var browser struct {
	once sync.Once
	ctx  context.Context
	err  error
}

func chromium() string {
	if p := os.Getenv("JUNCTION_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if browser.ctx != nil {
		chromedp.Cancel(browser.ctx)
	}
	os.Exit(code)
}

// startBrowser starts the one browser the package's tests share (each
// test gets its own tab).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		if os.Getenv("JUNCTION_REQUIRE_BROWSER") != "" {
			t.Fatal("Chromium is not installed and JUNCTION_REQUIRE_BROWSER is set: bash .ci/deps installs it (Debian's chromium)")
		}
		t.Skip("Chromium is not installed (bash .ci/deps installs it); set JUNCTION_REQUIRE_BROWSER to fail instead")
	}
	browser.once.Do(func() {
		dir, err := os.MkdirTemp("", "junction-chromium-")
		if err != nil {
			browser.err = err
			return
		}
		// The flags keep Chromium off the network (this machine's is
		// closed) and fit a root, GPU-less sandbox.
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.UserDataDir(dir),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.WindowSize(1280, 900),
		)
		alloc, _ := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, _ := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil {
			browser.err = fmt.Errorf("start %s: %w", path, err)
			return
		}
		browser.ctx = ctx
	})
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	return browser.ctx
}

// server is a gateway with the console over a built-in store.
type server struct {
	base  string
	token string // sent with every API call the test makes itself
	store *raftstore.Store
}

func startServer(t *testing.T, tune ...func(*gateway.Config)) *server {
	t.Helper()
	store, err := raftstore.Open(context.Background(), raftstore.DefaultConfig(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := gateway.DefaultConfig()
	cfg.UI = true
	for _, f := range tune {
		f(&cfg)
	}
	l, err := gateway.ServeLoopback(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return &server{base: "http://" + l.Addr, store: store}
}

// api makes a REST call as the test (not the page) and decodes a JSON
// answer into out when given; it fails the test on a status other than
// want.
func (s *server) api(t *testing.T, method, path, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// page is one browser tab on the console.
type page struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []string // the page's console, exceptions and browser log
}

// openPage opens a tab; when the test fails, its screenshot and console
// log go to the test's artifact directory (go test -artifacts keeps it)
// and the log into the test's output.
func openPage(t *testing.T, s *server) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(startBrowser(t))
	ctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	p := &page{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s: %s", m.Type, m.Text)
			if m.IsException() {
				line = "exception: " + m.Text
			}
			if m.URL != "" {
				line += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
			}
			p.mu.Lock()
			p.log = append(p.log, line)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		defer cancel()
		defer cancelT()
		p.mu.Lock()
		lines := append([]string(nil), p.log...)
		p.mu.Unlock()
		for _, l := range lines {
			// Nothing the console runs may throw or break the page's
			// content security policy.
			if strings.HasPrefix(l, "exception:") || strings.Contains(l, "Content Security Policy") {
				t.Errorf("the page: %s", l)
			}
		}
		if !t.Failed() {
			return
		}
		dir := t.ArtifactDir()
		if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "screenshot.png"), png, 0o644)
		}
		_ = os.WriteFile(filepath.Join(dir, "console.log"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		t.Logf("screenshot and console log in %s; the page's console:\n%s", dir, strings.Join(lines, "\n"))
	})
	p.run(chromedp.Navigate(s.base + "/ui/"))
	return p
}

func (p *page) run(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatal(err)
	}
}

// goTo moves the page to a screen by its hash route.
func (p *page) goTo(hash string) {
	p.t.Helper()
	p.eval(fmt.Sprintf("location.hash = %q", hash))
}

func (p *page) eval(js string) []byte {
	p.t.Helper()
	out, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		p.t.Fatalf("%s: %v", js, err)
	}
	return out
}

// waitFor polls a JavaScript expression until it is truthy, at most d;
// it returns how long that took.
func (p *page) waitFor(js string, d time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		p.t.Fatalf("waiting %v for %s: %v", d, js, err)
	}
	return time.Since(start)
}

// fill sets a control's value as typing would: the input and change
// events fire.
func (p *page) fill(sel, value string) {
	p.t.Helper()
	p.run(chromedp.WaitVisible(chromedp.CSS(sel)))
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.focus(); e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true })()`, sel, value)
	p.eval(js)
}

// click clicks the element sel (CSS), as the mouse would.
func (p *page) click(sel string) {
	p.t.Helper()
	p.run(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// button clicks the button whose text is label, once it is enabled (a
// click() on the element: a mouse click at its place would miss when the
// page moves it meanwhile).
func (p *page) button(label string) {
	p.t.Helper()
	find := fmt.Sprintf(`[...document.querySelectorAll('button')].find(b => b.textContent.trim() === %q && !b.disabled && b.offsetParent !== null)`, label)
	p.waitFor("!!"+find, 10*time.Second)
	p.eval(fmt.Sprintf("(%s).click(), true", find))
}

// disabled reports whether the button labelled label is disabled, and why
// (its title).
func (p *page) disabled(label string) (bool, string) {
	p.t.Helper()
	var r struct {
		Disabled bool   `json:"disabled"`
		Title    string `json:"title"`
	}
	p.waitFor(fmt.Sprintf(`[...document.querySelectorAll('button')].some(b => b.textContent.trim() === %q)`, label), 5*time.Second)
	if err := json.Unmarshal(p.eval(fmt.Sprintf(`(() => { const b = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === %q);
		return {disabled: b.disabled, title: b.title} })()`, label)), &r); err != nil {
		p.t.Fatal(err)
	}
	return r.Disabled, r.Title
}

// text returns the text of the first element sel matches.
func (p *page) text(sel string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// shot writes a screenshot of the page as docs/console/NAME.png when the
// run was asked for them (-ui.screenshots).
func (p *page) shot(name string) {
	p.t.Helper()
	if *screenshots == "" {
		return
	}
	p.run(chromedp.Sleep(150 * time.Millisecond))
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.MkdirAll(*screenshots, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(*screenshots, name+".png"), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}
