package backends

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Credentials are masked wherever a backend URL is shown, and can come
// from files instead of the URL.
func TestCredentialsInURLs(t *testing.T) {
	for raw, secret := range map[string]string{
		"etcd://junction:hunter2@10.0.0.1:2379?prefix=/j":          "hunter2",
		"consul://10.0.0.1:8500?token=5e1f-secret-uuid":            "5e1f-secret-uuid",
		"consul://6a2f-secret-uuid@10.0.0.1:8500":                  "6a2f-secret-uuid",
		"zk://10.0.0.1:2181?username=junction&password=zk-pass":    "zk-pass",
		"nacos://10.0.0.1:8848?access-key=ak&secret-key=sk-secret": "sk-secret",
	} {
		got := Redact(raw)
		if strings.Contains(got, secret) || !strings.Contains(got, "xxxxx") {
			t.Errorf("Redact(%q) = %q", raw, got)
		}
	}
	if got := Redact("etcd://%zz"); strings.Contains(got, "%zz") {
		t.Errorf("a malformed URL is echoed: %q", got)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("zk://10.0.0.1:2181?username=junction&password-file=" + file)
	if err := readSecretFiles(u); err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("password") != "from-a-file" || q.Has("password-file") {
		t.Errorf("after reading the file: %v", q)
	}
	u, _ = url.Parse("consul://10.0.0.1:8500?token-file=" + filepath.Join(dir, "missing"))
	if err := readSecretFiles(u); err == nil || !strings.Contains(err.Error(), "token-file") {
		t.Errorf("a missing token file: %v", err)
	}
}
