package gateway

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"unicode"

	"github.com/aymanbagabas/go-udiff"
	"google.golang.org/grpc/metadata"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/backends/remote"
	"github.com/junctionhq/junction/model"
)

// maxMessageLen bounds the message a write keeps with its version.
const maxMessageLen = 1024

// change returns ctx carrying who makes a configuration write and why, for
// the version it makes (backends.WithChange): the caller's accessor ID
// with access control on; with it off, the author a forwarding gateway (or
// any client: nothing is proven then) names in the junction-author
// header, else the client's address.
func (s *Server) change(ctx context.Context, message string) (context.Context, error) {
	if len(message) > maxMessageLen {
		return nil, model.TooLarge("message", len(message), maxMessageLen)
	}
	if !printable(message) {
		return nil, model.Invalid("message", "must be printable text")
	}
	return backends.WithChange(ctx, backends.Change{Author: authorOf(ctx), Message: message, Retention: s.cfg.HistoryRetention}), nil
}

func authorOf(ctx context.Context) string {
	if c, ok := callerOf(ctx); ok && c.on {
		return c.p.AccessorID
	}
	if v := metadata.ValueFromIncomingContext(ctx, remote.AuthorHeader); len(v) == 1 && authorRE.MatchString(v[0]) {
		return v[0]
	}
	return clientAddr(ctx)
}

// authorRE is what an author named by a header may be: a name, an
// address or an accessor ID, nothing that could pass for another column.
var authorRE = regexp.MustCompile(`^[A-Za-z0-9_.:@/+\[\]-]{1,128}$`)

// printable reports whether s is text: no control characters but newlines
// and tabs, and no format characters (bidirectional overrides and the
// like, which make text read other than it is).
func printable(s string) bool {
	for _, r := range s {
		if (unicode.IsControl(r) && r != '\n' && r != '\t') || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

func (c *configService) ListConfigHistory(ctx context.Context, req *pb.ListConfigHistoryRequest) (*pb.ListConfigHistoryResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	vs, info, err := c.s.b.ConfigHistory(ctx, key, backends.ReadOptions{Stale: req.Stale})
	if err != nil {
		return nil, err
	}
	resp := &pb.ListConfigHistoryResponse{Revision: info.Revision, Consistency: string(info.Consistency)}
	for _, v := range slices.Backward(vs) {
		resp.Versions = append(resp.Versions, pb.NewConfigVersion(v, false))
	}
	return resp, nil
}

func (c *configService) GetConfigVersion(ctx context.Context, req *pb.GetConfigVersionRequest) (*pb.ConfigVersion, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	if req.Number < 1 {
		return nil, model.Invalid("number", "a version number counts from 1")
	}
	v, err := c.s.version(ctx, key, req.Number, "number", backends.ReadOptions{Stale: req.Stale})
	if err != nil {
		return nil, err
	}
	return pb.NewConfigVersion(v, true), nil
}

func (c *configService) DiffConfig(ctx context.Context, req *pb.DiffConfigRequest) (*pb.DiffConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	switch {
	case req.From < 0:
		return nil, model.Invalid("from", "a version number counts from 1")
	case req.To < 0:
		return nil, model.Invalid("to", "a version number counts from 1")
	}
	opts := backends.ReadOptions{Stale: req.Stale}
	if req.Content != nil {
		return c.diffCandidate(ctx, key, req.From, req.To, *req.Content, opts)
	}
	vs, _, err := c.s.b.ConfigHistory(ctx, key, opts)
	if err != nil {
		return nil, err
	}
	to, from, err := diffPair(key, vs, req.From, req.To)
	if err != nil {
		return nil, err
	}
	// The list may leave contents out: read the two versions compared.
	if to, err = c.s.version(ctx, key, to.Number, "to", opts); err != nil {
		return nil, err
	}
	resp := &pb.DiffConfigResponse{To: pb.NewConfigVersion(to, false)}
	var before string
	label := "/dev/null"
	if from != nil {
		f, err := c.s.version(ctx, key, from.Number, "from", opts)
		if err != nil {
			return nil, err
		}
		resp.From = pb.NewConfigVersion(f, false)
		before, label = diffSide(f), fmt.Sprintf("%s@%d", key.DataID, f.Number)
	}
	resp.Diff = udiff.Unified(label, fmt.Sprintf("%s@%d", key.DataID, to.Number), before, diffSide(to))
	return resp, nil
}

// diffCandidate compares a content not yet published with version from,
// or with the item's current content when from is 0 (nothing when the
// item does not exist): the diff an editor shows before a publish.
func (c *configService) diffCandidate(ctx context.Context, key model.ConfigKey, from, to int64, content string, opts backends.ReadOptions) (*pb.DiffConfigResponse, error) {
	if to != 0 {
		return nil, model.Invalid("to", "a diff of a candidate content compares it with version from, or with the current content; leave to unset")
	}
	before, label := "", "/dev/null"
	resp := &pb.DiffConfigResponse{}
	if from != 0 {
		v, err := c.s.version(ctx, key, from, "from", opts)
		if err != nil {
			return nil, err
		}
		resp.From = pb.NewConfigVersion(v, false)
		before, label = diffSide(v), fmt.Sprintf("%s@%d", key.DataID, v.Number)
	} else {
		item, _, err := c.s.b.GetConfig(ctx, key, opts)
		switch {
		case errors.Is(err, model.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			before, label = string(item.Content), fmt.Sprintf("%s (revision %d)", key.DataID, item.Revision)
		}
	}
	resp.Diff = udiff.Unified(label, key.DataID+" (candidate)", before, content)
	return resp, nil
}

// version reads one version of key; when the history does not keep it,
// the error names field and the versions it keeps.
func (s *Server) version(ctx context.Context, key model.ConfigKey, n int64, field string, opts backends.ReadOptions) (model.ConfigVersion, error) {
	v, err := s.b.ConfigVersion(ctx, key, n, opts)
	if !errors.Is(err, model.ErrNotFound) {
		return v, err
	}
	vs, _, herr := s.b.ConfigHistory(ctx, key, opts)
	if herr != nil {
		return v, herr
	}
	return v, &model.FieldError{Field: field, Reason: fmt.Sprintf("config %s has no version %d%s", key, n, retained(vs)), Kind: model.ErrNotFound}
}

// diffPair picks the versions a diff compares: to (default: the newest)
// and from (default: the one before to, nil when there is none).
func diffPair(key model.ConfigKey, vs []model.ConfigVersion, from, to int64) (model.ConfigVersion, *model.ConfigVersion, error) {
	find := func(field string, n int64) (int, error) {
		i := slices.IndexFunc(vs, func(v model.ConfigVersion) bool { return v.Number == n })
		if i < 0 {
			return 0, &model.FieldError{Field: field, Reason: fmt.Sprintf("config %s has no version %d%s", key, n, retained(vs)), Kind: model.ErrNotFound}
		}
		return i, nil
	}
	if len(vs) == 0 {
		return model.ConfigVersion{}, nil, fmt.Errorf("config %s has no history: %w", key, model.ErrNotFound)
	}
	ti := len(vs) - 1
	if to != 0 {
		var err error
		if ti, err = find("to", to); err != nil {
			return model.ConfigVersion{}, nil, err
		}
	}
	switch {
	case from != 0:
		fi, err := find("from", from)
		if err != nil {
			return model.ConfigVersion{}, nil, err
		}
		return vs[ti], &vs[fi], nil
	case ti > 0:
		return vs[ti], &vs[ti-1], nil
	}
	return vs[ti], nil, nil
}

// retained says which versions an item's history holds, for an error.
func retained(vs []model.ConfigVersion) string {
	if len(vs) == 0 {
		return " (its history is empty)"
	}
	return fmt.Sprintf(" (it keeps %d to %d)", vs[0].Number, vs[len(vs)-1].Number)
}

// diffSide is what a version shows in a diff: its content, nothing for a
// delete.
func diffSide(v model.ConfigVersion) string {
	if v.Op == model.OpDelete {
		return ""
	}
	return string(v.Content)
}

func (c *configService) RollbackConfig(ctx context.Context, req *pb.RollbackConfigRequest) (*pb.PutConfigResponse, error) {
	key, err := configKey(req.Namespace, req.Group, req.DataId)
	if err != nil {
		return nil, err
	}
	if req.Number < 1 {
		return nil, model.Invalid("number", "a version number counts from 1")
	}
	cond, err := precondition(req.IfRevision)
	if err != nil {
		return nil, err
	}
	v, err := c.s.version(ctx, key, req.Number, "number", backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	if v.Op == model.OpDelete {
		return nil, model.Invalid("number", "version %d of %s is a delete: roll back to a version that published content", v.Number, key)
	}
	msg := req.Message
	if msg == "" {
		msg = fmt.Sprintf("rollback to version %d", v.Number)
	}
	if ctx, err = c.s.change(ctx, msg); err != nil {
		return nil, err
	}
	cfg, err := c.s.b.PutConfig(ctx, model.Config{Key: key, Content: v.Content, ContentType: v.ContentType}, cond)
	if err != nil {
		return nil, err
	}
	return &pb.PutConfigResponse{Config: pb.NewConfig(cfg)}, nil
}
