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

func publishConfig(ctx context.Context, s *Server, body []byte) (string, any) {
	var req configPublishRequest
	if err := decode(body, &req); err != nil {
		return "ConfigPublishResponse", failure(err)
	}
	key, err := configKey(req.Tenant, req.Group, req.DataID)
	if err != nil {
		return "ConfigPublishResponse", failure(err)
	}
	done, err := s.allow(ctx, "ConfigPublishRequest", acl.ActWrite, configRes(key))
	if err != nil {
		return "ConfigPublishResponse", failure(err)
	}
	var werr error
	defer func() { done(werr) }()
	beta, tag := req.AdditionMap["betaIps"], req.AdditionMap["tag"]
	refused := ""
	switch {
	case req.AdditionMap["encryptedDataKey"] != "":
		refused = "encryptedDataKey"
	case (beta != "" || tag != "") && s.cfg.Grays == nil:
		refused = "betaIps or tag"
	}
	if refused != "" {
		// An encrypted publish, or a beta (gray) or tagged one where no
		// gray releases are served, must not land as everyone's release.
		werr = fmt.Errorf("%s is not taken: %w", refused, model.ErrUnsupported)
		return "ConfigPublishResponse", fail(errNotImplemented, "Junction's Nacos front end does not take "+refused)
	}
	if beta != "" || tag != "" {
		werr = s.publishGray(ctx, key, req, beta, tag)
		if werr != nil {
			return "ConfigPublishResponse", failure(werr)
		}
		return "ConfigPublishResponse", ok()
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
			werr = err
			return "ConfigPublishResponse", failure(err)
		case cur.MD5 != req.CasMd5:
			werr = fmt.Errorf("cas publish of %s failed: its md5 is %s, not %s: %w", key, cur.MD5, req.CasMd5, model.ErrConflict)
			return "ConfigPublishResponse", fail(errConflict, werr.Error())
		}
		cond = model.Precondition{Check: true, Revision: cur.Revision}
	}
	content := []byte(req.Content)
	if werr = model.ValidateContent(content, s.cfg.MaxContentSize); werr != nil {
		return "ConfigPublishResponse", failure(werr)
	}
	cfg := model.Config{Key: key, Content: content, ContentType: contentTypes[req.AdditionMap["type"]]}
	if _, werr = s.b.PutConfig(s.change(ctx), cfg, cond); werr != nil {
		return "ConfigPublishResponse", failure(werr)
	}
	return "ConfigPublishResponse", ok()
}

func queryConfig(ctx context.Context, s *Server, body []byte) (string, any) {
	type configQueryResponse struct {
		response
		Content      string `json:"content"`
		ContentType  string `json:"contentType"`
		MD5          string `json:"md5"`
		LastModified int64  `json:"lastModified"`
	}
	var req configRequest
	if err := decode(body, &req); err != nil {
		return "ConfigQueryResponse", failure(err)
	}
	key, err := configKey(req.Tenant, req.Group, req.DataID)
	if err == nil {
		_, err = s.allow(ctx, "ConfigQueryRequest", acl.ActRead, configRes(key))
	}
	if err != nil {
		return "ConfigQueryResponse", configQueryResponse{response: failure(err)}
	}
	release, _, err := s.b.GetConfig(ctx, key, backends.ReadOptions{})
	if err != nil {
		return "ConfigQueryResponse", configQueryResponse{response: failure(err)}
	}
	cfg := s.effective(ctx, key, &release, req.Tag)
	return "ConfigQueryResponse", configQueryResponse{response: ok(), Content: string(cfg.Content),
		ContentType: cfg.ContentType, MD5: cfg.MD5, LastModified: cfg.Updated.UnixMilli()}
}

func removeConfig(ctx context.Context, s *Server, body []byte) (string, any) {
	var req configRequest
	if err := decode(body, &req); err != nil {
		return "ConfigRemoveResponse", failure(err)
	}
	key, err := configKey(req.Tenant, req.Group, req.DataID)
	if err != nil {
		return "ConfigRemoveResponse", failure(err)
	}
	done, err := s.allow(ctx, "ConfigRemoveRequest", acl.ActWrite, configRes(key))
	if err != nil {
		return "ConfigRemoveResponse", failure(err)
	}
	err = s.deleteConfig(ctx, key)
	done(err)
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		return "ConfigRemoveResponse", failure(err)
	}
	return "ConfigRemoveResponse", ok()
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
func batchListen(ctx context.Context, s *Server, body []byte) (string, any) {
	type batchListenResponse struct {
		response
		ChangedConfigs []configContext `json:"changedConfigs"`
	}
	var req configBatchListenRequest
	if err := decode(body, &req); err != nil {
		return "ConfigChangeBatchListenResponse", failure(err)
	}
	c, found := s.connOf(ctx)
	if !found {
		return "ErrorResponse", fail(errUnregistered, errUnregisteredConn.Error())
	}
	changed := []configContext{}
	for _, l := range req.Contexts {
		key, err := configKey(l.Tenant, l.Group, l.DataID)
		if err == nil {
			_, err = s.allow(ctx, "ConfigBatchListenRequest", acl.ActRead, configRes(key))
		}
		if err != nil {
			return "ConfigChangeBatchListenResponse", failure(err)
		}
		if !req.Listen {
			c.unlisten(key)
			continue
		}
		gray, unwait := s.grayChanged(key) // before the read: no gray change slips in between
		cur, rev, err := s.current(ctx, key)
		if err != nil {
			unwait()
			return "ConfigChangeBatchListenResponse", failure(err)
		}
		if err := c.listen(key, configContext{Group: l.Group, DataID: l.DataID, Tenant: l.Tenant}, rev, secretOf(ctx), gray, unwait); err != nil {
			return "ConfigChangeBatchListenResponse", failure(err)
		}
		if !sameMD5(cur, l.MD5) {
			changed = append(changed, configContext{Group: l.Group, DataID: l.DataID, Tenant: l.Tenant})
		}
	}
	return "ConfigChangeBatchListenResponse", batchListenResponse{response: ok(), ChangedConfigs: changed}
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
