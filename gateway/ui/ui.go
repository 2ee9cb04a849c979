// Package ui is Junction's web console: plain ES modules and one small
// vendored library (htm with Preact, in static/vendor with its licenses),
// embedded in the binary and served by junction server at /ui/. It works
// offline: nothing is fetched from anywhere but the server itself, and it
// calls nothing but the public REST API, so whatever the console can do, a
// script can do.
package ui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// types are the files' content types, fixed: a host's MIME table (which
// may map .js to text/plain) would stop the modules loading, nosniff set.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".md":   "text/markdown; charset=utf-8",
}

// file is one embedded file, compressed once when the handler is made.
type file struct {
	body, gzipped []byte
	ctype, etag   string
}

// Handler serves the console under Prefix: each file with a strong ETag
// (so a browser revalidates instead of downloading again), gzipped when the
// client accepts it, and with headers that keep the page from running or
// framing anything that is not its own.
func Handler() (http.Handler, error) {
	files := map[string]file{}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := types[path.Ext(name)]
		if !ok {
			ctype = "text/plain; charset=utf-8"
		}
		files[strings.TrimPrefix(name, "static/")] = file{body: body, gzipped: z.Bytes(), ctype: ctype,
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console files: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		// Each encoding its own strong ETag: the bodies differ.
		body, tag := f.body, f.etag
		gz := acceptsGzip(r.Header.Get("Accept-Encoding"))
		if gz {
			body, tag = f.gzipped, f.etag[:len(f.etag)-1]+`-gz"`
		}
		h.Set("ETag", tag)
		h.Set("Vary", "Accept-Encoding")
		h.Set("Content-Type", f.ctype)
		if match := r.Header.Get("If-None-Match"); match == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if gz {
			h.Set("Content-Encoding", "gzip")
		}
		h.Set("Content-Length", fmt.Sprint(len(body)))
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
	}), nil
}

// acceptsGzip reports whether an Accept-Encoding value allows gzip.
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if enc = strings.TrimSpace(enc); !strings.EqualFold(enc, "gzip") && enc != "*" {
			continue
		}
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			q, _ = strconv.ParseFloat(v, 64)
		}
		return q > 0
	}
	return false
}
