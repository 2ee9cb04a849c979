package nacos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// configKey maps a request's tenant, group and data id onto Junction's.
func configKey(tenant, group, dataID string) (model.ConfigKey, error) {
	k := model.ConfigKey{Namespace: tenant, Group: group, DataID: dataID}.WithDefaults()
	if k.Namespace == model.SystemNamespace {
		return k, fmt.Errorf("namespace %s is Junction's own: %w", k.Namespace, model.ErrPermissionDenied)
	}
	return k, k.Validate()
}

// contentTypes maps Nacos' config types onto Junction's (html is text).
var contentTypes = map[string]string{"text": model.ContentText, "json": model.ContentJSON, "yaml": model.ContentYAML,
	"properties": model.ContentProperties, "xml": model.ContentXML, "toml": model.ContentTOML, "html": model.ContentText}

// change names the author of a write (the Nacos client's address) and
// the history's retention, as the gateway's writes do.
func (s *Server) change(ctx context.Context) context.Context {
	host, _, err := net.SplitHostPort(peerAddr(ctx))
	if err != nil {
		host = peerAddr(ctx)
	}
	return backends.WithChange(ctx, backends.Change{Author: "nacos:" + host, Retention: s.cfg.HistoryRetention})
}

// parseConfig names a config request's item, and the resource decided.
func parseConfig(req *configRequest) (model.ConfigKey, []acl.Resource, error) {
	key, err := configKey(req.Tenant, req.Group, req.DataID)
	return key, []acl.Resource{configRes(key)}, err
}

func parsePublish(req *configPublishRequest) (model.ConfigKey, []acl.Resource, error) {
	return parseConfig(&req.configRequest)
}

func publishConfig(ctx context.Context, s *Server, req *configPublishRequest, key model.ConfigKey) (any, error) {
	return ok(), s.publish(ctx, key, req)
}

// publish writes a config: its release, or with betaIps or a tag its
// gray release.
func (s *Server) publish(ctx context.Context, key model.ConfigKey, req *configPublishRequest) error {
	beta, tag := req.AdditionMap["betaIps"], req.AdditionMap["tag"]
	switch {
	case req.AdditionMap["encryptedDataKey"] != "":
		// An encrypted publish must not land as plain content.
		return fmt.Errorf("encrypted configs (encryptedDataKey) are not taken by Junction's Nacos front end: %w", model.ErrUnsupported)
	case beta != "" || tag != "":
		// A beta (gray) or tagged one, where no gray releases are served,
		// must not land as everyone's release.
		if s.cfg.Grays == nil {
			return fmt.Errorf("beta and tagged publishes (betaIps, tag) are not taken here: this front end serves no gray releases: %w", model.ErrUnsupported)
		}
		return s.publishGray(ctx, key, *req, beta, tag)
	}
	var cond model.Precondition
	if req.CasMd5 != "" {
		// casMd5: a compare-and-set on the revision the md5 was read at,
		// so that a write between the read and this one fails too.
		// An item that does not exist is created, as a Nacos server does
		// (which is how clients make a create-only write: a casMd5 that
		// no content has), unless another write creates it first.
		cur, _, err := s.b.GetConfig(ctx, key, backends.ReadOptions{})
		switch {
		case errors.Is(err, model.ErrNotFound):
			cur = model.Config{MD5: req.CasMd5}
		case err != nil:
			return err
		case cur.MD5 != req.CasMd5:
			return fmt.Errorf("cas publish of %s failed: its md5 is %s, not %s: %w", key, cur.MD5, req.CasMd5, model.ErrConflict)
		}
		cond = model.Precondition{Check: true, Revision: cur.Revision}
	}
	content := []byte(req.Content)
	if err := model.ValidateContent(content, s.cfg.MaxContentSize); err != nil {
		return err
	}
	cfg := model.Config{Key: key, Content: content, ContentType: contentTypes[req.AdditionMap["type"]]}
	_, err := s.b.PutConfig(s.change(ctx), cfg, cond)
	return err
}

func queryConfig(ctx context.Context, s *Server, req *configRequest, key model.ConfigKey) (any, error) {
	type configQueryResponse struct {
		response
		Content      string `json:"content"`
		ContentType  string `json:"contentType"`
		MD5          string `json:"md5"`
		LastModified int64  `json:"lastModified"`
	}
	release, _, err := s.b.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil {
		return nil, err
	}
	cfg := s.effective(ctx, key, &release, req.Tag)
	return configQueryResponse{response: ok(), Content: string(cfg.Content),
		ContentType: cfg.ContentType, MD5: cfg.MD5, LastModified: cfg.Updated.UnixMilli()}, nil
}

// removeConfig deletes an item; one that does not exist is removed too,
// as Nacos answers.
func removeConfig(ctx context.Context, s *Server, _ *configRequest, key model.ConfigKey) (any, error) {
	if err := s.deleteConfig(ctx, key); err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, err
	}
	return ok(), nil
}

// deleteConfig deletes an item, and its gray release with it.
func (s *Server) deleteConfig(ctx context.Context, key model.ConfigKey) error {
	if _, err := s.b.DeleteConfig(s.change(ctx), key, model.Precondition{}); err != nil {
		return err
	}
	if s.cfg.Grays != nil {
		s.cfg.Grays.ConfigDeleted(ctx, key)
	}
	return nil
}

// batchListen answers which of the configs listed changed (their md5
// differs from the client's), and keeps a watch of each for the
// connection: a change is pushed as a ConfigChangeNotifyRequest, after
// which the client queries the config.
func batchListen(ctx context.Context, s *Server, req *configBatchListenRequest, keys []model.ConfigKey) (any, error) {
	type batchListenResponse struct {
		response
		ChangedConfigs []configContext `json:"changedConfigs"`
	}
	c, found := s.connOf(ctx)
	if !found {
		return nil, errUnregisteredConn
	}
	changed := []configContext{}
	for i, l := range req.Contexts {
		key := keys[i]
		if !req.Listen {
			c.unlisten(key)
			continue
		}
		gray, unwait := s.grayChanged(key) // before the read: no gray change slips in between
		cur, rev, err := s.current(ctx, key)
		if err != nil {
			unwait()
			return nil, err
		}
		if err := c.listen(key, configContext{Group: l.Group, DataID: l.DataID, Tenant: l.Tenant}, rev, secretOf(ctx), gray, unwait); err != nil {
			return nil, err
		}
		if !sameMD5(cur, l.MD5) {
			changed = append(changed, configContext{Group: l.Group, DataID: l.DataID, Tenant: l.Tenant})
		}
	}
	return batchListenResponse{response: ok(), ChangedConfigs: changed}, nil
}

// parseListen names a batch listen's items, each decided.
func parseListen(req *configBatchListenRequest) ([]model.ConfigKey, []acl.Resource, error) {
	if len(req.Contexts) > maxPerConn {
		return nil, nil, fmt.Errorf("%d configs in one listen; at most %d: %w", len(req.Contexts), maxPerConn, model.ErrInvalidArgument)
	}
	keys := make([]model.ConfigKey, len(req.Contexts))
	res := make([]acl.Resource, len(req.Contexts))
	for i, l := range req.Contexts {
		key, err := configKey(l.Tenant, l.Group, l.DataID)
		if err != nil {
			return nil, nil, err
		}
		keys[i], res[i] = key, configRes(key)
	}
	return keys, res, nil
}

// emptyMD5 is the md5 of an empty content, which the Go client spells "".
var emptyMD5 = model.ContentMD5(nil)

// sameMD5 reports whether the client's md5 is the server's: the Go client
// sends "" for an empty content (the Java client its md5).
func sameMD5(server, client string) bool {
	return server == client || (server == emptyMD5 && client == "")
}

// current returns a config's md5 ("" when it does not exist) and the
// revision of the read.
func (s *Server) current(ctx context.Context, key model.ConfigKey) (string, int64, error) {
	cfg, info, err := s.b.GetConfig(ctx, key, backends.ReadOptions{})
	switch {
	case errors.Is(err, model.ErrNotFound):
		return "", info.Revision, nil
	case err != nil:
		return "", 0, err
	}
	return s.effective(ctx, key, &cfg, "").MD5, info.Revision, nil
}

// Gray (beta) releases: Nacos' betaIps and tags, served as the gateway's
// gray releases (Config.Grays), so that one published through either API
// reaches its clients through both.

// Grays serves gray releases over the store: the gateway's (gateway.Server
// is one).
type Grays interface {
	// PublishGray publishes content as key's gray release to the clients
	// rule chooses (model.ErrNotFound when the item does not exist).
	PublishGray(ctx context.Context, key model.ConfigKey, content []byte, contentType string, rule model.GrayRule) error
	// GrayConfig returns what client gets of release: the gray release
	// when one chooses it.
	GrayConfig(key model.ConfigKey, release *model.Config, client model.GrayClient) (*model.Config, bool)
	// GrayChanged returns a channel closed at key's next gray change, and
	// release, to call once no longer waiting on it.
	GrayChanged(key model.ConfigKey) (<-chan struct{}, func())
	// ConfigDeleted ends the gray release of key, just deleted.
	ConfigDeleted(ctx context.Context, key model.ConfigKey)
}

// tagLabel is the client label a Nacos tag becomes in a gray rule: a
// query asking for tag T is a client labelled nacos.tag=T.
const tagLabel = "nacos.tag"

// grayClient is who a gray rule sees in a request: the client's address,
// and the tag the request asks for.
func grayClient(ctx context.Context, tag string) model.GrayClient {
	c := model.GrayClient{IP: hostOf(peerAddr(ctx))}
	if tag != "" {
		c.Labels = map[string]string{tagLabel: tag}
	}
	return c
}

// effective returns what the caller gets of release: the gray release
// that chooses it, where there is one.
func (s *Server) effective(ctx context.Context, key model.ConfigKey, release *model.Config, tag string) *model.Config {
	if s.cfg.Grays == nil {
		return release
	}
	c, _ := s.cfg.Grays.GrayConfig(key, release, grayClient(ctx, tag))
	return c
}

// grayChanged is a channel closed at key's next gray change (nil, never,
// where no gray releases are served) and its release. Take it before
// reading the item, so that no change slips in between.
func (s *Server) grayChanged(key model.ConfigKey) (<-chan struct{}, func()) {
	if s.cfg.Grays == nil {
		return nil, func() {}
	}
	return s.cfg.Grays.GrayChanged(key)
}

// publishGray publishes a beta or tagged publish as key's gray release: to
// the clients at the betaIps (comma-separated), and to the queries asking
// for the tag; both must match where both are set.
func (s *Server) publishGray(ctx context.Context, key model.ConfigKey, req configPublishRequest, beta, tag string) error {
	if req.CasMd5 != "" {
		return model.Invalid("casMd5", "a beta or tagged publish is not a compare-and-set of the release")
	}
	content := []byte(req.Content)
	if err := model.ValidateContent(content, s.cfg.MaxContentSize); err != nil {
		return err
	}
	var rule model.GrayRule
	for ip := range strings.SplitSeq(beta, ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			rule.IPs = append(rule.IPs, ip)
		}
	}
	if tag != "" {
		rule.Labels = map[string]string{tagLabel: tag}
	}
	if err := rule.Validate(); err != nil {
		return err
	}
	return s.cfg.Grays.PublishGray(s.change(ctx), key, content, contentTypes[req.AdditionMap["type"]], rule)
}

func (c *conn) unlisten(key model.ConfigKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stop := c.listens[key]; stop != nil {
		stop()
		delete(c.listens, key)
	}
}

// listen keeps one watch of key for the connection, from revision rev,
// and of its gray releases from gray, taken before rev was read, which it
// releases with unwait (a listen already running stays).
func (c *conn) listen(key model.ConfigKey, names configContext, rev int64, secret string, gray <-chan struct{}, unwait func()) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listens[key] != nil {
		unwait()
		return nil
	}
	if len(c.listens) >= maxPerConn {
		unwait()
		return fmt.Errorf("a connection listens to at most %d configs: %w", maxPerConn, model.ErrInvalidArgument)
	}
	ctx, stop := context.WithCancel(c.ctx)
	c.listens[key] = stop
	events := make(chan model.Event, 16)
	go c.s.follow(ctx, backends.WatchRequest{Config: &key}, rev, events)
	go func() {
		type configChangeNotifyRequest struct {
			request
			configContext
			Module string `json:"module"`
		}
		defer func() { unwait() }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-events:
			case <-gray: // what this client gets may change
				unwait()
				gray, unwait = c.s.grayChanged(key) // before the client reads again
			}
			if !c.s.mayRead(withSecret(c.ctx, c.tokenFor(secret)), configRes(key)) {
				c.unlisten(key) // the token lost the right: no more news
				return
			}
			if err := c.push("ConfigChangeNotifyRequest", configChangeNotifyRequest{request: request{RequestID: c.pushID()},
				configContext: names, Module: "config"}); err != nil {
				return
			}
		}
	}()
	return nil
}
