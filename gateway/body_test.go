package gateway_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junctionhq/junction/backends/raftstore"
	"github.com/junctionhq/junction/gateway"
)

// A client that stops sending its request body holds the request for the
// body timeout only: then it is refused and nothing is stored. A body that
// keeps coming, however slowly, is served.
func TestStalledBodyTimesOut(t *testing.T) {
	e := start(t, func(_ *raftstore.Config, g *gateway.Config) { g.BodyTimeout = 300 * time.Millisecond })
	send := func(body string, declared int, pace time.Duration) (code int, took time.Duration) {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, _ = io.WriteString(c, "PUT "+cfgPath+"stalled HTTP/1.1\r\nHost: x\r\nContent-Length: "+
			strconv.Itoa(declared)+"\r\n\r\n")
		for i := range len(body) {
			time.Sleep(pace)
			_, _ = c.Write([]byte{body[i]})
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, time.Since(start)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	// Each byte 100 ms apart, well inside the timeout: served.
	if code, _ := send("slow", 4, 100*time.Millisecond); code != 200 {
		t.Fatalf("a slow body: %d, want 200", code)
	}
	// Three bytes of a declared hundred, then nothing.
	code, took := send("abc", 100, 0)
	if code != 0 && (code < 400 || code >= 500) {
		t.Fatalf("a stalled body: %d, want a 4xx or the connection closed", code)
	}
	if took > 5*time.Second {
		t.Fatalf("a stalled body held its request for %v (body timeout 300ms)", took)
	}
	if r := e.do(t, "GET", cfgPath+"stalled", ""); r.status != 200 || r.body != "slow" {
		t.Fatalf("after the stalled body the config is %d %q, want the slow body's", r.status, r.body)
	}
}
