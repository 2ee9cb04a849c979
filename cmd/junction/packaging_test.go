package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// printed runs `junction server --print-config` with args and env, and
// returns the settings it prints.
func printed(t *testing.T, env []string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"server", "--print-config"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("junction server --print-config %v: %v\n%s", args, err, out)
	}
	var m map[string]string
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatalf("--print-config printed no YAML: %v\n%s", err, out)
	}
	return m
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "junction.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A setting comes from the command line, else the environment, else the
// file, else the default; --print-config shows the result, secrets
// redacted, as a file --config reads back alike.
func TestServerSettingsPrecedence(t *testing.T) {
	file := writeFile(t, "# the settings of one node\nwatch-history: 10\nlog-level: warn\nmax-content-size: 1000\n"+
		"join-token: jct_file_secret\nbackend: etcd://root:hunter2@127.0.0.1:2379\n")
	env := []string{"JUNCTION_WATCH_HISTORY=20", "JUNCTION_LOG_LEVEL=error", "JUNCTION_CONFIG=" + file,
		"JUNCTION_UI=true"} // the default, which still wins over the file
	if err := os.WriteFile(file, []byte("ui: false\n"+string(must(os.ReadFile(file)))), 0o600); err != nil {
		t.Fatal(err)
	}
	got := printed(t, env, "--watch-history", "30")
	want := map[string]string{"watch-history": "30", "log-level": "error", "max-content-size": "1000",
		"body-timeout": "30s", "ui": "true"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s is %q, want %q", k, got[k], v)
		}
	}
	cmd := exec.Command(binary(t), "server", "--print-config", "--watch-history", "30")
	cmd.Env = append(os.Environ(), env...)
	raw, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "hunter2") || strings.Contains(string(raw), "jct_file_secret") ||
		!strings.Contains(string(raw), "not shown, as they hold secrets: backend, join-token") {
		t.Errorf("--print-config shows a secret, or does not say it hides them:\n%s", raw)
	}
	for _, secret := range []string{"backend", "join-token"} {
		if v, ok := got[secret]; ok {
			t.Errorf("%s printed as %q: read back, that would be the secret", secret, v)
		}
	}
	for _, client := range []string{"addr", "token", "output", "config", "print-config"} {
		if _, ok := got[client]; ok {
			t.Errorf("--print-config shows %q, which is no server setting", client)
		}
	}
	// Read back, the printed defaults set nothing: --data-dir, printed at
	// its default, does not conflict with --backend.
	defaults := printed(t, nil)
	out, err := exec.Command(binary(t), "server", "--print-config").Output()
	if err != nil {
		t.Fatal(err)
	}
	again := printed(t, nil, "--config", writeFile(t, string(out)), "--backend", "raft:///tmp/x")
	for k, v := range defaults {
		if k != "backend" && again[k] != v {
			t.Errorf("read back, %s is %q, want %q", k, again[k], v)
		}
	}
}

// Unknown keys, bad values and malformed files are refused, naming the
// file's line and the key, or the variable; nothing starts.
func TestServerSettingsRefused(t *testing.T) {
	for _, c := range []struct {
		name, file string
		env        []string
		want       []string
	}{
		{name: "unknown key", file: "listen: 127.0.0.1:1\nlisten-adress: 127.0.0.1:2\n", want: []string{":2:", `unknown setting "listen-adress"`}},
		{name: "bad value", file: "watch-history: lots\n", want: []string{":1:", "watch-history", `"lots"`}},
		{name: "bad duration", file: "\nhealth-lease: soon\n", want: []string{":2:", "health-lease"}},
		{name: "twice", file: "ui: true\nui: false\n", want: []string{":2:", `"ui" is set twice`}},
		{name: "a list", file: "listen: [a, b]\n", want: []string{":1:", "a single value"}},
		{name: "not a mapping", file: "- listen\n", want: []string{"not a mapping"}},
		{name: "not YAML", file: "listen: \"unclosed\n", want: []string{"junction.yaml"}},
		{name: "a settings flag", file: "print-config: true\n", want: []string{`unknown setting "print-config"`}},
		{name: "bad environment", env: []string{"JUNCTION_AUTH=maybe"}, want: []string{"JUNCTION_AUTH", `"maybe"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"server", "--listen", freeAddr(t), "--data-dir", t.TempDir()}
			if c.file != "" {
				args = append(args, "--config", writeFile(t, c.file))
			}
			cmd := exec.Command(binary(t), args...)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the server started with %q:\n%s", c.file, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the refusal does not say %q:\n%s", w, out)
				}
			}
		})
	}
	// --check-config checks what the server checks before it opens its
	// store, a cluster node's settings included, and opens nothing.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--node-id", "10.0.0.1:7480", "--raft-addr", "10.0.0.1:7481", "--peers", "10.0.0.2:7480=10.0.0.2:7481"}, "peers"},
		{[]string{"--listen", "0.0.0.0:7480"}, "--auth"},
		{[]string{"--config-history-versions", "0"}, "config-history-versions"},
	} {
		dir := t.TempDir()
		out, err := exec.Command(binary(t), append([]string{"server", "--check-config", "--data-dir", dir}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("--check-config %v: %v\n%s", c.args, err, out)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("--check-config %v wrote into the data directory", c.args)
		}
	}
	if out, err := exec.Command(binary(t), "server", "--config", filepath.Join(t.TempDir(), "missing.yaml")).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "missing.yaml") {
		t.Errorf("a missing file: %v\n%s", err, out)
	}
}

// A server runs from its file alone: the address it listens on, and its
// data directory.
func TestServerRunsFromItsFile(t *testing.T) {
	addr, dir := freeAddr(t), t.TempDir()
	file := writeFile(t, "listen: "+addr+"\ndata-dir: "+dir+"\nui: false\n")
	s := launchCmd(t, addr, exec.Command(binary(t), "server", "--config", file))
	s.waitReady(t)
	if entries, _ := os.ReadDir(dir); len(entries) == 0 {
		t.Errorf("the store is not in the file's data-dir %s", dir)
	}
	resp, err := http.Get("http://" + addr + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the console answers %d with ui: false in the file", resp.StatusCode)
	}
}

// The version, commit, commit date and Go version: from `junction version`,
// --version, /v1/status and the junction_build_info metric, alike.
func TestVersion(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "junction")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-ldflags", "-X main.version=v9.9.9-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version, Commit, Date, GoVersion string }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if v.Version != "v9.9.9-test" || v.GoVersion != runtime.Version() || v.Commit == "" || v.Date == "" {
		t.Errorf("junction version: %+v", v)
	}
	// In a git checkout (CI clones one) the commit is the checkout's.
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && !strings.HasPrefix(v.Commit, strings.TrimSpace(string(head))) {
		t.Errorf("the commit is %q, the checkout's HEAD %s", v.Commit, head)
	}
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.Contains(string(out), "junction v9.9.9-test") ||
		!strings.Contains(string(out), v.Commit) {
		t.Errorf("--version: %v\n%s", err, out)
	}

	addr := freeAddr(t)
	s := launchCmd(t, addr, exec.Command(bin, "server", "--listen", addr, "--data-dir", t.TempDir()))
	s.waitReady(t)
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	var st struct {
		Version string
		Build   struct{ Version, Commit, Date, GoVersion string }
	}
	if err := json.Unmarshal([]byte(get("/v1/status")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Version != v.Version || st.Build.Version != v.Version || st.Build.Commit != v.Commit || st.Build.Date != v.Date || st.Build.GoVersion != v.GoVersion {
		t.Errorf("/v1/status says %+v, the binary %+v", st, v)
	}
	metric := `junction_build_info{commit="` + v.Commit + `",date="` + v.Date + `",goversion="` + v.GoVersion + `",version="v9.9.9-test"} 1`
	if m := get("/metrics"); !strings.Contains(m, metric) {
		t.Errorf("/metrics has no %s", metric)
	}
}
