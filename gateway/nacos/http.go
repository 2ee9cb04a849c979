package nacos

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/model"
)

// The Nacos v1 open API over HTTP, as the Java client, nacos-sdk-go (for
// persistent instances) and scripts call it. Parameters come in the query
// or as a form, as Nacos takes them.

// maxListenKeys bounds one long poll's configs.
const maxListenKeys = 3000

// maxLongPoll bounds how long a long poll may ask to be held.
const maxLongPoll = 120 * time.Second

// routes is the one table of the open API. Every route decides its
// request with the authorizer, except the open ones (TestNacosEveryRouteDecides).
var routes = []struct {
	pattern string
	handler func(*Server, http.ResponseWriter, *http.Request)
	open    bool // no token needed: it reads nothing of the store
}{
	{"POST /nacos/v1/ns/instance", (*Server).httpRegister, false},
	{"PUT /nacos/v1/ns/instance", (*Server).httpUpdate, false},
	{"DELETE /nacos/v1/ns/instance", (*Server).httpDeregister, false},
	{"GET /nacos/v1/ns/instance", (*Server).httpInstance, false},
	{"GET /nacos/v1/ns/instance/list", (*Server).httpList, false},
	{"PUT /nacos/v1/ns/instance/beat", (*Server).httpBeat, false},
	{"GET /nacos/v1/ns/service/list", (*Server).httpServices, false},
	{"GET /nacos/v1/cs/configs", (*Server).httpGetConfig, false},
	{"POST /nacos/v1/cs/configs", (*Server).httpPublish, false},
	{"DELETE /nacos/v1/cs/configs", (*Server).httpRemove, false},
	{"POST /nacos/v1/cs/configs/listener", (*Server).httpListen, false},
	{"POST /nacos/v1/auth/login", (*Server).httpLogin, true},
	{"POST /nacos/v1/auth/users/login", (*Server).httpLogin, true},
	{"GET /nacos/v1/console/health/liveness", func(_ *Server, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) }, true},
}

// Routes lists the open API's routes (METHOD PATH), v1 and v2, and
// whether each is open (needs no token).
func Routes() map[string]bool {
	out := map[string]bool{}
	for _, r := range routes {
		out[r.pattern] = r.open
	}
	for v2, same := range v2Routes {
		out[v2] = out[same]
	}
	return out
}

// HTTPHandler returns the open API's handler.
func (s *Server) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	v1 := map[string]func(*Server, http.ResponseWriter, *http.Request){}
	for _, rt := range routes {
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.handler(s, w, r) })
		v1[rt.pattern] = rt.handler
	}
	for v2, same := range v2Routes {
		h := v1[same]
		mux.HandleFunc(v2, func(w http.ResponseWriter, r *http.Request) { s.v2(h, w, r) })
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxContentSize)+1<<20)
		if err := r.ParseForm(); err != nil {
			httpFail(w, fmt.Errorf("%w: %v", model.ErrInvalidArgument, err))
			return
		}
		ctx := context.WithValue(withSecret(r.Context(), httpSecret(r)), addrKey{}, r.RemoteAddr)
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

// httpFail answers an error as Nacos does: a status and a plain message.
func httpFail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, model.ErrInvalidArgument), errors.Is(err, model.ErrTooLarge):
		code = http.StatusBadRequest
	case errors.Is(err, model.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, model.ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, model.ErrPermissionDenied):
		code = http.StatusForbidden
	case errors.Is(err, model.ErrUnauthenticated):
		code = http.StatusUnauthorized
	case errors.Is(err, model.ErrRateLimited):
		code = http.StatusTooManyRequests
	case errors.Is(err, model.ErrUnavailable):
		code = http.StatusServiceUnavailable
	}
	http.Error(w, "caused: "+err.Error(), code)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(s))
}

// formService reads a request's service: namespaceId, groupName and
// serviceName (which may carry the group).
func formService(r *http.Request) (model.ServiceKey, error) {
	return serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), r.Form.Get("serviceName"))
}

func formBool(r *http.Request, def bool, names ...string) (bool, error) {
	for _, n := range names {
		if v := r.Form.Get(n); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, model.Invalid(n, "%q is not true or false", v)
			}
			return b, nil
		}
	}
	return def, nil
}

// formInstance reads an instance: ip, port, clusterName, weight, enabled
// (or enable), healthy, ephemeral and metadata (JSON, or k=v,k=v).
func formInstance(r *http.Request) (model.Instance, error) {
	port, err := strconv.ParseUint(r.Form.Get("port"), 10, 16)
	if err != nil {
		return model.Instance{}, model.Invalid("port", "%q is not a port", r.Form.Get("port"))
	}
	in := instance{IP: r.Form.Get("ip"), Port: port, ClusterName: r.Form.Get("clusterName"), Weight: 1}
	if v := r.Form.Get("weight"); v != "" {
		if in.Weight, err = strconv.ParseFloat(v, 64); err != nil {
			return model.Instance{}, model.Invalid("weight", "%q is not a number", v)
		}
	}
	if in.Enabled, err = formBool(r, true, "enabled", "enable"); err != nil {
		return model.Instance{}, err
	}
	if in.Healthy, err = formBool(r, true, "healthy"); err != nil {
		return model.Instance{}, err
	}
	if in.Ephemeral, err = formBool(r, true, "ephemeral"); err != nil {
		return model.Instance{}, err
	}
	if in.Metadata, err = parseMetadata(r.Form.Get("metadata")); err != nil {
		return model.Instance{}, err
	}
	return toInstance(in), nil
}

func parseMetadata(v string) (map[string]string, error) {
	if v == "" {
		return nil, nil
	}
	m := map[string]string{}
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return nil, model.Invalid("metadata", "not a JSON object of strings: %v", err)
		}
		return m, nil
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, found := strings.Cut(kv, "=")
		if !found {
			return nil, model.Invalid("metadata", "%q is not k=v", kv)
		}
		m[k] = val
	}
	return m, nil
}

// httpAllow decides an HTTP request, answering a refusal itself.
func (s *Server) httpAllow(w http.ResponseWriter, r *http.Request, act acl.Action, res acl.Resource) (func(error), bool) {
	done, err := s.allow(r.Context(), r.Method+" "+r.URL.Path, act, res)
	if err != nil {
		httpFail(w, err)
		return nil, false
	}
	return done, true
}

// httpWrite decides a write, makes it, audits its outcome and answers:
// answer when it succeeded (or, with absentOK, when there was nothing to
// remove), the error otherwise.
func (s *Server) httpWrite(w http.ResponseWriter, r *http.Request, res acl.Resource, answer string, absentOK bool, write func() error) {
	done, allowed := s.httpAllow(w, r, acl.ActWrite, res)
	if !allowed {
		return
	}
	err := write()
	done(err)
	if err != nil && !(absentOK && errors.Is(err, model.ErrNotFound)) {
		httpFail(w, err)
		return
	}
	writeText(w, answer)
}

// httpRegister registers an instance. An ephemeral one (the default) gets
// a session of its own that its beats keep alive; registering it again
// keeps its session while that lives.
func (s *Server) httpRegister(w http.ResponseWriter, r *http.Request) {
	svc, err := formService(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	inst, err := formInstance(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	done, allowed := s.httpAllow(w, r, acl.ActWrite, serviceRes(svc))
	if !allowed {
		return
	}
	check := inst
	if check.Ephemeral {
		check.Session = "-" // validated before a session is made for it
	}
	if err := check.Normalize(); err != nil {
		httpFail(w, err)
		return
	}
	ctx := r.Context()
	if inst.Ephemeral {
		if cur, found := s.find(ctx, svc, inst.ID); found && s.beating(cur.Session) {
			if _, err := s.b.KeepAlive(ctx, cur.Session); err == nil {
				inst.Session = cur.Session
			}
		}
		if inst.Session == "" {
			sess, _, err := s.b.CreateSession(ctx, s.cfg.BeatTTL)
			if err != nil {
				done(err)
				httpFail(w, err)
				return
			}
			inst.Session = sess.ID
			s.beat(sess.ID)
		}
	}
	if err := inst.Normalize(); err != nil {
		done(err)
		httpFail(w, err)
		return
	}
	_, err = s.b.Register(ctx, svc, inst)
	done(err)
	if err != nil {
		httpFail(w, err)
		return
	}
	writeText(w, "ok")
}

// beating reports whether id is a session the HTTP API made (and has
// heard a beat for within three TTLs).
func (s *Server) beating(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, found := s.beats[id]
	return id != "" && found && time.Since(last) < 3*s.cfg.BeatTTL
}

// beat records a beat of an HTTP session, and forgets the ones long
// silent (their sessions have expired in the store).
func (s *Server) beat(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.beats[id] = time.Now()
	if len(s.beats)%1024 == 0 {
		for k, t := range s.beats {
			if time.Since(t) > 3*s.cfg.BeatTTL {
				delete(s.beats, k)
			}
		}
	}
}

// find reads one instance of svc.
func (s *Server) find(ctx context.Context, svc model.ServiceKey, id string) (model.Instance, bool) {
	insts, _, err := s.b.Instances(ctx, svc, backends.ReadOptions{})
	if err != nil {
		return model.Instance{}, false
	}
	for _, i := range insts {
		if i.ID == id {
			return i, true
		}
	}
	return model.Instance{}, false
}

// httpUpdate changes an instance's weight, enabled and metadata in place
// (its owner unchanged).
func (s *Server) httpUpdate(w http.ResponseWriter, r *http.Request) {
	svc, err := formService(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	inst, err := formInstance(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	// Only what the request names changes.
	var p model.InstancePatch
	if r.Form.Has("weight") {
		p.Weight = &inst.Weight
	}
	if r.Form.Has("enabled") || r.Form.Has("enable") {
		p.Enabled = &inst.Enabled
	}
	if r.Form.Has("metadata") {
		p.Metadata = inst.Metadata
		if p.Metadata == nil {
			p.Metadata = map[string]string{} // an empty map clears it
		}
	}
	s.httpWrite(w, r, serviceRes(svc), "ok", false, func() error {
		_, err := s.b.PatchInstance(r.Context(), svc, inst.ID, p)
		return err
	})
}

func (s *Server) httpDeregister(w http.ResponseWriter, r *http.Request) {
	svc, err := formService(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	port, err := strconv.ParseUint(r.Form.Get("port"), 10, 16)
	if err != nil {
		httpFail(w, model.Invalid("port", "%q is not a port", r.Form.Get("port")))
		return
	}
	id := instanceID(r.Form.Get("ip"), port, r.Form.Get("clusterName"))
	s.httpWrite(w, r, serviceRes(svc), "ok", true, func() error {
		_, err := s.b.Deregister(r.Context(), svc, id)
		return err
	})
}

func (s *Server) httpInstance(w http.ResponseWriter, r *http.Request) {
	svc, err := formService(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	if _, allowed := s.httpAllow(w, r, acl.ActRead, serviceRes(svc)); !allowed {
		return
	}
	port, _ := strconv.ParseUint(r.Form.Get("port"), 10, 16)
	id := instanceID(r.Form.Get("ip"), port, cmp.Or(r.Form.Get("cluster"), r.Form.Get("clusterName")))
	inst, found := s.find(r.Context(), svc, id)
	if !found {
		httpFail(w, fmt.Errorf("no instance %s in %s: %w", id, svc, model.ErrNotFound))
		return
	}
	writeJSON(w, fromInstance(svc, inst))
}

func (s *Server) httpList(w http.ResponseWriter, r *http.Request) {
	svc, err := formService(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	healthyOnly, err := formBool(r, false, "healthyOnly")
	if err != nil {
		httpFail(w, err)
		return
	}
	if _, allowed := s.httpAllow(w, r, acl.ActRead, serviceRes(svc)); !allowed {
		return
	}
	insts, _, err := s.b.Instances(r.Context(), svc, backends.ReadOptions{})
	if err != nil {
		httpFail(w, err)
		return
	}
	out := info(svc, r.Form.Get("clusters"), insts, healthyOnly, s.threshold(r.Context(), svc), uint64(time.Now().UnixMilli()))
	out.Name = svc.Group + groupSep + svc.Service // the v1 API's full name
	writeJSON(w, out)
}

// httpBeat keeps an ephemeral instance registered over HTTP alive; an
// instance Junction does not have is answered with code 20404, on which
// the client registers it again.
func (s *Server) httpBeat(w http.ResponseWriter, r *http.Request) {
	type beat struct {
		IP          string `json:"ip"`
		Port        uint64 `json:"port"`
		Cluster     string `json:"cluster"`
		ServiceName string `json:"serviceName"`
	}
	var b beat
	if v := r.Form.Get("beat"); v != "" {
		if err := json.Unmarshal([]byte(v), &b); err != nil {
			httpFail(w, model.Invalid("beat", "not a beat: %v", err))
			return
		}
	} else {
		b.IP, b.Cluster = r.Form.Get("ip"), r.Form.Get("clusterName")
		b.Port, _ = strconv.ParseUint(r.Form.Get("port"), 10, 16)
	}
	svc, err := serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), cmp.Or(r.Form.Get("serviceName"), b.ServiceName))
	if err != nil {
		httpFail(w, err)
		return
	}
	type beatResponse struct {
		ClientBeatInterval int64 `json:"clientBeatInterval"`
		Code               int   `json:"code"`
		LightBeatEnabled   bool  `json:"lightBeatEnabled"`
	}
	if _, allowed := s.httpAllow(w, r, acl.ActWrite, serviceRes(svc)); !allowed {
		return
	}
	inst, found := s.find(r.Context(), svc, instanceID(b.IP, b.Port, b.Cluster))
	if !found || !s.beating(inst.Session) {
		writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 20404})
		return
	}
	s.beat(inst.Session)
	if _, err := s.b.KeepAlive(r.Context(), inst.Session); err != nil {
		if errors.Is(err, model.ErrSessionExpired) {
			writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 20404})
			return
		}
		httpFail(w, err)
		return
	}
	writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 10200, LightBeatEnabled: true})
}

func (s *Server) httpServices(w http.ResponseWriter, r *http.Request) {
	scope, err := serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), "-")
	if err == nil {
		err = s.authenticated(r.Context(), "GET /nacos/v1/ns/service/list")
	}
	if err != nil {
		httpFail(w, err)
		return
	}
	ns, group := scope.Namespace, scope.Group
	list, _, err := s.b.Services(r.Context(), ns, group, model.ServiceKey{Namespace: ns}, 0, backends.ReadOptions{})
	if err != nil {
		httpFail(w, err)
		return
	}
	names := []string{}
	for _, sv := range list {
		if s.mayRead(r.Context(), serviceRes(sv.Key)) {
			names = append(names, sv.Key.Service)
		}
	}
	no, _ := strconv.Atoi(r.Form.Get("pageNo"))
	size, _ := strconv.Atoi(r.Form.Get("pageSize"))
	writeJSON(w, map[string]any{"count": len(names), "doms": page(names, no, size)})
}

func formConfig(r *http.Request) (model.ConfigKey, error) {
	return configKey(r.Form.Get("tenant"), r.Form.Get("group"), r.Form.Get("dataId"))
}

func (s *Server) httpGetConfig(w http.ResponseWriter, r *http.Request) {
	key, err := formConfig(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	if _, allowed := s.httpAllow(w, r, acl.ActRead, configRes(key)); !allowed {
		return
	}
	release, _, err := s.b.GetConfig(r.Context(), key, backends.ReadOptions{})
	if errors.Is(err, model.ErrNotFound) {
		http.Error(w, "config data not exist", http.StatusNotFound)
		return
	}
	if err != nil {
		httpFail(w, err)
		return
	}
	cfg := s.effective(r.Context(), key, &release, r.Form.Get("tag"))
	w.Header().Set("Content-MD5", cfg.MD5)
	w.Header().Set("Config-Type", cfg.ContentType)
	w.Header().Set("Last-Modified", cfg.Updated.UTC().Format(http.TimeFormat))
	writeText(w, string(cfg.Content))
}

func (s *Server) httpPublish(w http.ResponseWriter, r *http.Request) {
	key, err := formConfig(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	body, _ := json.Marshal(configPublishRequest{configRequest: configRequest{Group: key.Group, DataID: key.DataID, Tenant: key.Namespace},
		Content: r.Form.Get("content"), CasMd5: r.Form.Get("casMd5"), AdditionMap: map[string]string{"type": r.Form.Get("type"),
			"betaIps": r.Header.Get("betaIps"), "tag": r.Form.Get("tag"), "encryptedDataKey": r.Form.Get("encryptedDataKey")}})
	_, resp := publishConfig(r.Context(), s, body)
	if res := resp.(response); !res.Success {
		code := http.StatusBadRequest
		switch res.ErrorCode {
		case errConflict:
			code = http.StatusConflict
		case errForbidden:
			code = http.StatusForbidden
		case errUnauthenticated:
			code = http.StatusUnauthorized
		case errRateLimited:
			code = http.StatusTooManyRequests
		case errNotImplemented:
			code = http.StatusNotImplemented
		case errServer:
			code = http.StatusInternalServerError
		}
		http.Error(w, res.Message, code)
		return
	}
	writeText(w, "true")
}

func (s *Server) httpRemove(w http.ResponseWriter, r *http.Request) {
	key, err := formConfig(r)
	if err != nil {
		httpFail(w, err)
		return
	}
	s.httpWrite(w, r, configRes(key), "true", true, func() error { return s.deleteConfig(r.Context(), key) })
}

// listenKey is one config of a long poll, as the client named it.
type listenKey struct {
	key                   model.ConfigKey
	dataID, group, tenant string
	md5                   string
}

// parseListening reads the Listening-Configs wire format: per config
// dataId^2group^2md5[^2tenant]^1, where ^1 and ^2 are the bytes 1 and 2.
func parseListening(v string) ([]listenKey, error) {
	var out []listenKey
	for _, item := range strings.Split(v, "\x01") {
		if item == "" {
			continue
		}
		f := strings.Split(item, "\x02")
		if len(f) < 3 || len(f) > 4 {
			return nil, model.Invalid("Listening-Configs", "%q is not dataId^2group^2md5[^2tenant]", item)
		}
		l := listenKey{dataID: f[0], group: f[1], md5: f[2]}
		if len(f) == 4 {
			l.tenant = f[3]
		}
		k, err := configKey(l.tenant, l.group, l.dataID)
		if err != nil {
			return nil, err
		}
		l.key = k
		out = append(out, l)
		if len(out) > maxListenKeys {
			return nil, model.Invalid("Listening-Configs", "more than %d configs in one listen", maxListenKeys)
		}
	}
	return out, nil
}

// httpListen is the long poll: it answers at once with the configs whose
// md5 differs from the client's, otherwise when one of them changes, or
// empty when Long-Pulling-Timeout (30 s by default) passes.
func (s *Server) httpListen(w http.ResponseWriter, r *http.Request) {
	keys, err := parseListening(r.Form.Get("Listening-Configs"))
	if err != nil {
		httpFail(w, err)
		return
	}
	timeout := 30 * time.Second
	if v := r.Header.Get("Long-Pulling-Timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			httpFail(w, model.Invalid("Long-Pulling-Timeout", "%q is not milliseconds", v))
			return
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxLongPoll)
	}
	ctx := r.Context()
	var changed []listenKey
	revs := make([]int64, len(keys))
	for _, k := range keys {
		if _, allowed := s.httpAllow(w, r, acl.ActRead, configRes(k.key)); !allowed {
			return
		}
	}
	// The gray changes, watched from before the reads: none slips in
	// between.
	grays := make([]<-chan struct{}, len(keys))
	for i, k := range keys {
		var unwait func()
		grays[i], unwait = s.grayChanged(k.key)
		defer unwait()
	}
	for i, k := range keys {
		cur, rev, err := s.current(ctx, k.key)
		if err != nil {
			httpFail(w, err)
			return
		}
		revs[i] = rev
		if !sameMD5(cur, k.md5) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 && timeout > 0 && len(keys) > 0 {
		changed = s.waitChange(ctx, keys, revs, grays, timeout)
		// Held up to two minutes: the token must still be good.
		for _, k := range changed {
			if _, allowed := s.httpAllow(w, r, acl.ActRead, configRes(k.key)); !allowed {
				return
			}
		}
	}
	var b strings.Builder
	for _, k := range changed {
		b.WriteString(k.dataID + "\x02" + k.group)
		if k.tenant != "" {
			b.WriteString("\x02" + k.tenant)
		}
		b.WriteString("\x01")
	}
	writeText(w, url.QueryEscape(b.String()))
}

// waitChange watches keys from their revisions until one changes (and
// returns it), timeout passes or ctx ends (nil).
func (s *Server) waitChange(ctx context.Context, keys []listenKey, revs []int64, grays []<-chan struct{}, timeout time.Duration) []listenKey {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hit := make(chan listenKey, 2*len(keys))
	for i, k := range keys {
		if grays[i] != nil {
			go func() {
				select {
				case <-grays[i]: // what this client gets may change
					hit <- k
				case <-ctx.Done():
				}
			}()
		}
	}
	for i, k := range keys {
		w, err := s.b.Watch(ctx, backends.WatchRequest{Config: &k.key, FromRevision: revs[i]})
		if err != nil {
			continue
		}
		go func() {
			defer w.Close()
			for {
				e, err := w.Next(ctx)
				if err != nil {
					return
				}
				if e.Type == model.EventReset && e.Revision <= revs[i] {
					continue
				}
				hit <- k
				return
			}
		}()
	}
	select {
	case k := <-hit:
		return []listenKey{k}
	case <-ctx.Done():
		return nil
	}
}
