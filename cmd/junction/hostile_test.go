package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawRequest sends req over a new TCP connection and returns the response's
// status code, or 0 when the server closed the connection without one. With
// a pace, the bytes after the head go one at a time, pace apart.
func rawRequest(t *testing.T, addr, req string, pace time.Duration) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	head, body, _ := strings.Cut(req, "\r\n\r\n")
	if pace == 0 {
		_, _ = io.WriteString(c, req)
	} else {
		_, _ = io.WriteString(c, head+"\r\n\r\n")
		for i := range len(body) {
			time.Sleep(pace)
			if _, err := c.Write([]byte{body[i]}); err != nil {
				break
			}
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A hostile client, through a real server: random methods and paths,
// malformed JSON, wrong types, huge and odd names, "..", NUL bytes,
// oversized headers and bodies, slow bodies. Nothing gets a 5xx (503 is
// allowed: a store that cannot serve now), and the server is still ready
// and serving afterwards.
func TestHostileRequests(t *testing.T) {
	addr := freeAddr(t)
	srv := startServer(t, t.TempDir(), addr)
	const svc = "/v1/namespaces/public/groups/DEFAULT_GROUP/services/"
	const cfg = "/v1/namespaces/public/groups/DEFAULT_GROUP/configs/"
	check := func(what string, code int) {
		t.Helper()
		if code >= 500 && code != http.StatusServiceUnavailable {
			t.Errorf("%s: %d", what, code)
		}
	}

	// Requests a Go client will not send, over raw connections.
	long := strings.Repeat("a", 70000)
	for _, line := range []string{
		"GET " + cfg + "a\x00b HTTP/1.1",
		"GET " + cfg + "%00 HTTP/1.1",
		"GET " + cfg + "../../../etc/passwd HTTP/1.1",
		"GET " + cfg + "..%2F..%2Fetc%2Fpasswd HTTP/1.1",
		"GET " + svc + "..%2f/instances HTTP/1.1",
		"GET " + cfg + ".. HTTP/1.1",
		"PUT " + cfg + "%2e%2e HTTP/1.1",
		"GET " + cfg + "%ff%fe HTTP/1.1",
		"GET /v1/namespaces/%c0%ae%c0%ae/configs HTTP/1.1",
		"GET " + cfg + long + " HTTP/1.1",
		"GET " + svc + long + "/instances HTTP/1.1",
		"GET /v1/namespaces/public/services?pageToken=" + long + " HTTP/1.1",
		"BREW /readyz HTTP/1.1",
		"GET  HTTP/1.1",
		"\x00\x01\x02 / HTTP/1.1",
	} {
		check(fmt.Sprintf("%.60q", line), rawRequest(t, addr, line+"\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0))
	}
	if code := rawRequest(t, addr, "GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n", 0); code != http.StatusHTTPVersionNotSupported {
		t.Errorf("HTTP/9.9: %d, want 505", code)
	}
	check("oversized header", rawRequest(t, addr, "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("b", 2<<20)+"\r\n\r\n", 0))
	check("many headers", rawRequest(t, addr, "GET /v1/status HTTP/1.1\r\nHost: x\r\n"+strings.Repeat("X-A: b\r\n", 20000)+"\r\n", 0))
	check("bad content length", rawRequest(t, addr, "PUT "+cfg+"a HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc", 0))
	check("bad chunking", rawRequest(t, addr, "POST "+svc+"s/instances HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 0))
	slow := `{"ip":"10.0.0.9","port":9}`
	if code := rawRequest(t, addr, fmt.Sprintf("POST %ss/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", svc, len(slow), slow), 40*time.Millisecond); code != 200 {
		t.Errorf("slow body: %d, want 200", code)
	}

	// Random requests a Go client does send.
	rng := rand.New(rand.NewPCG(1, 2))
	segments := []string{"public", "DEFAULT_GROUP", "..", ".", "%2e%2e", "%00", "%ff", "a%2Fb", "%20", "x:watch", ":watch",
		strings.Repeat("n", 300), "é", "名前", "a;b", "*", "~", "{id}", "instances", "configs", "services", "groups", "namespaces"}
	bodies := []string{"", "{", "}", "null", "[]", `{"ip":`, `{"ip":1,"port":"x"}`, `{"ip":"1.2.3.4","port":80,"weight":"heavy"}`,
		`{"ip":"1.2.3.4","port":99999}`, `{"ttl":{}}`, `{"metadata":[1,2]}`, `{"enabled":"yes"}`, "\x00\x00", "\xff\xfe\xfd",
		`{"ip":"1.2.3.4","port":80,"metadata":{"` + strings.Repeat("k", 5000) + `":"v"}}`, strings.Repeat("[", 100000),
		`{"ip":"1.2.3.4","port":80,"check":{"kind":"http","target":"http://[::1"}}`}
	methods := []string{"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND"}
	client := &http.Client{Timeout: 2 * time.Second}
	for i := range 400 {
		var path string
		switch rng.IntN(3) {
		case 0:
			path = svc + segments[rng.IntN(len(segments))] + "/instances"
		case 1:
			path = cfg + segments[rng.IntN(len(segments))]
		}
		for range rng.IntN(4) {
			path += "/" + segments[rng.IntN(len(segments))]
		}
		if rng.IntN(3) == 0 {
			path += "?" + segments[rng.IntN(len(segments))] + "=" + segments[rng.IntN(len(segments))]
		}
		method, body := methods[rng.IntN(len(methods))], bodies[rng.IntN(len(bodies))]
		req, err := http.NewRequest(method, "http://"+addr+"/"+strings.TrimPrefix(path, "/"), strings.NewReader(body))
		if err != nil {
			continue // not a request a client can send
		}
		if rng.IntN(2) == 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		if strings.Contains(path, "watch") {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			req = req.WithContext(ctx)
		}
		resp, err := client.Do(req)
		if err != nil {
			if strings.Contains(path, "watch") {
				continue // a watch that started holds until the client gives up
			}
			t.Errorf("request %d %s %q: %v", i, method, path, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		check(fmt.Sprintf("request %d %s %.80q %.40q", i, method, path, body), resp.StatusCode)
	}
	// An oversized body over HTTP/1.1 and a config larger than the limit.
	req, _ := http.NewRequest("POST", "http://"+addr+svc+"s/instances", strings.NewReader(strings.Repeat(" ", 8<<20)))
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
		check("8 MiB JSON body", resp.StatusCode)
	}
	if code, err := put(addr, "big", strings.Repeat("x", 2<<20)); err != nil || code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB config: %d %v, want 413", code, err)
	}

	// Still ready, still serving, never panicked.
	srv.waitReady(t)
	if code, err := put(addr, "after", "ok"); err != nil || code != 200 {
		t.Fatalf("a PUT after the hostile requests: %d %v", code, err)
	}
	select {
	case <-srv.exited:
		t.Fatalf("server exited: %v\n%s", srv.err, srv.log)
	default:
	}
	if strings.Contains(srv.log.String(), "panic") {
		t.Fatalf("the server logged a panic:\n%s", srv.log)
	}
}
