package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/junctionhq/junction/backends"
)

// snapshotter returns the backend's Snapshotter, or an UNSUPPORTED error
// that says what to use instead.
func (s *Server) snapshotter() (backends.Snapshotter, error) {
	return snapshotter(s.b)
}

// saveSnapshot serves GET /v1/snapshot: the whole state of the built-in
// store, as of a linearizable read. X-Junction-Revision carries its
// revision.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, err := s.snapshotter()
	if err != nil {
		writeError(w, err)
		return
	}
	var buf bytes.Buffer // whole, so that a failure is an error status, not a cut body
	rev, err := sn.SaveSnapshot(r.Context(), &buf)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.Header().Set("X-Junction-Revision", strconv.FormatInt(rev, 10))
	_, _ = w.Write(buf.Bytes())
}

// restoreSnapshot serves PUT /v1/snapshot: the body, a saved snapshot,
// becomes the whole state.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, err := s.snapshotter()
	if err != nil {
		writeError(w, err)
		return
	}
	rev, err := sn.RestoreSnapshot(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"revision\":\"%d\"}\n", rev)
}
