package servertest

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Gauge returns the value of the unlabelled metric name on the /metrics
// page of the server at base (http://HOST:PORT), failing the test when
// the page cannot be read or has no such metric.
func Gauge(t testing.TB, base, name string) float64 {
	t.Helper()
	return Gauges(t, base, name)[0]
}

// Gauges returns the values of unlabelled metrics, read from one page.
func Gauges(t testing.TB, base string, names ...string) []float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := make([]float64, len(names))
	for i, name := range names {
		found := false
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatalf("%s: %q is not a number", name, v)
				}
				out[i], found = f, true
				break
			}
		}
		if !found {
			t.Fatalf("no %s on %s/metrics", name, base)
		}
	}
	return out
}

// WaitGauge waits up to 10 seconds for the metric name at base to read
// want, failing the test when it does not.
func WaitGauge(t testing.TB, base, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for Gauge(t, base, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, Gauge(t, base, name), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
