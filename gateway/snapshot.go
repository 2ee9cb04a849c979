package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/model"
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
	// Whole before it is sent, so that a failure is an error status, not
	// a cut body: spooled to a temporary file (a million instances make
	// hundreds of MB), or held in memory where there is no temporary
	// directory (a scratch image).
	var spool io.ReadWriter
	if f, err := os.CreateTemp("", "junction-snapshot-*"); err == nil {
		_ = os.Remove(f.Name()) // gone when closed
		defer f.Close()
		spool = f
	} else {
		spool = &bytes.Buffer{}
	}
	cw := &countingWriter{w: spool}
	rev, err := sn.SaveSnapshot(r.Context(), cw)
	if f, ok := spool.(*os.File); ok && err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.FormatInt(cw.n, 10))
	w.Header().Set("X-Junction-Revision", strconv.FormatInt(rev, 10))
	_, _ = io.Copy(w, spool)
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// restoreSnapshot serves PUT /v1/snapshot: the body, a saved snapshot,
// becomes the whole state — but for the ACL: the store's ACL record, when
// it has one, is kept as it was, so that a restore neither brings back
// revoked tokens nor drops access control (a snapshot from before the
// bootstrap would otherwise open the store to a new bootstrap by anyone).
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	sn, err := s.snapshotter()
	if err != nil {
		writeError(w, err)
		return
	}
	keep, _, err := s.b.GetConfig(r.Context(), aclKey, backends.ReadOptions{})
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		writeError(w, fmt.Errorf("reading the ACL to keep it across the restore: %w", err))
		return
	}
	rev, err := sn.RestoreSnapshot(r.Context(), r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	if keep.Revision != 0 {
		kept, err := s.b.PutConfig(r.Context(), model.Config{Key: aclKey, Content: keep.Content, ContentType: keep.ContentType}, model.Precondition{})
		if err != nil {
			writeError(w, fmt.Errorf("the snapshot is restored, but putting the ACL back failed (retry the restore): %w", err))
			return
		}
		rev = kept.Revision
		_ = s.acl.load(r.Context(), false)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = fmt.Fprintf(w, "{\"revision\":\"%d\"}\n", rev)
}
