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

// routes is the one table of the open API, each route built with the
// access decorator (guardHTTP) or open.
var routes = []struct {
	pattern string
	httpOp
}{
	{"POST /nacos/v1/ns/instance", guardHTTP(acl.ActWrite, formInstanceOf, (*Server).httpRegister)},
	{"PUT /nacos/v1/ns/instance", guardHTTP(acl.ActWrite, formInstanceOf, (*Server).httpUpdate)},
	{"DELETE /nacos/v1/ns/instance", guardHTTP(acl.ActWrite, formServiceOf, (*Server).httpDeregister)},
	{"GET /nacos/v1/ns/instance", guardHTTP(acl.ActRead, formServiceOf, (*Server).httpInstance)},
	{"GET /nacos/v1/ns/instance/list", guardHTTP(acl.ActRead, formServiceOf, (*Server).httpList)},
	{"PUT /nacos/v1/ns/instance/beat", guardHTTP(acl.ActWrite, formBeat, (*Server).httpBeat)},
	{"GET /nacos/v1/ns/service/list", guardHTTP(acl.ActRead, formScope, (*Server).httpServices)},
	{"GET /nacos/v1/cs/configs", guardHTTP(acl.ActRead, formConfigOf, (*Server).httpGetConfig)},
	{"POST /nacos/v1/cs/configs", guardHTTP(acl.ActWrite, formConfigOf, (*Server).httpPublish)},
	{"DELETE /nacos/v1/cs/configs", guardHTTP(acl.ActWrite, formConfigOf, (*Server).httpRemove)},
	{"POST /nacos/v1/cs/configs/listener", guardHTTP(acl.ActRead, formListening, (*Server).httpListen)},
	{"POST /nacos/v1/auth/login", openHTTP((*Server).httpLogin)},
	{"POST /nacos/v1/auth/users/login", openHTTP((*Server).httpLogin)},
	{"GET /nacos/v1/console/health/liveness", openHTTP(func(_ *Server, w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("OK")) })},
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
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { rt.serve(s, w, r) })
		v1[rt.pattern] = rt.serve
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
	case errors.Is(err, model.ErrUnsupported):
		code = http.StatusNotImplemented
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

// formServiceOf names a request's service (namespaceId, groupName and
// serviceName, which may carry the group), and the resource decided.
func formServiceOf(r *http.Request) (model.ServiceKey, []acl.Resource, error) {
	svc, err := serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), r.Form.Get("serviceName"))
	return svc, []acl.Resource{serviceRes(svc)}, err
}

// svcInstance is an instance a request names, and its service.
type svcInstance struct {
	svc  model.ServiceKey
	inst model.Instance
}

func formInstanceOf(r *http.Request) (svcInstance, []acl.Resource, error) {
	svc, res, err := formServiceOf(r)
	if err != nil {
		return svcInstance{}, nil, err
	}
	inst, err := formInstance(r)
	return svcInstance{svc, inst}, res, err
}

// httpRegister registers an instance. An ephemeral one (the default) gets
// a session of its own that its beats keep alive; registering it again
// keeps its session while that lives.
func (s *Server) httpRegister(w http.ResponseWriter, r *http.Request, si svcInstance) error {
	svc, inst := si.svc, si.inst
	check := inst
	if check.Ephemeral {
		check.Session = "-" // validated before a session is made for it
	}
	if err := check.Normalize(); err != nil {
		return err
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
				return err
			}
			inst.Session = sess.ID
			s.beat(sess.ID)
		}
	}
	if err := inst.Normalize(); err != nil {
		return err
	}
	if _, err := s.b.Register(ctx, svc, inst); err != nil {
		return err
	}
	writeText(w, "ok")
	return nil
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
func (s *Server) httpUpdate(w http.ResponseWriter, r *http.Request, si svcInstance) error {
	// Only what the request names changes.
	var p model.InstancePatch
	if r.Form.Has("weight") {
		p.Weight = &si.inst.Weight
	}
	if r.Form.Has("enabled") || r.Form.Has("enable") {
		p.Enabled = &si.inst.Enabled
	}
	if r.Form.Has("metadata") {
		p.Metadata = si.inst.Metadata
		if p.Metadata == nil {
			p.Metadata = map[string]string{} // an empty map clears it
		}
	}
	if _, err := s.b.PatchInstance(r.Context(), si.svc, si.inst.ID, p); err != nil {
		return err
	}
	writeText(w, "ok")
	return nil
}

// httpDeregister removes an instance; one that is not there is removed
// too, as Nacos answers.
func (s *Server) httpDeregister(w http.ResponseWriter, r *http.Request, svc model.ServiceKey) error {
	port, err := strconv.ParseUint(r.Form.Get("port"), 10, 16)
	if err != nil {
		return model.Invalid("port", "%q is not a port", r.Form.Get("port"))
	}
	id := instanceID(r.Form.Get("ip"), port, r.Form.Get("clusterName"))
	if _, err := s.b.Deregister(r.Context(), svc, id); err != nil && !errors.Is(err, model.ErrNotFound) {
		return err
	}
	writeText(w, "ok")
	return nil
}

func (s *Server) httpInstance(w http.ResponseWriter, r *http.Request, svc model.ServiceKey) error {
	port, _ := strconv.ParseUint(r.Form.Get("port"), 10, 16)
	id := instanceID(r.Form.Get("ip"), port, cmp.Or(r.Form.Get("cluster"), r.Form.Get("clusterName")))
	inst, found := s.find(r.Context(), svc, id)
	if !found {
		return fmt.Errorf("no instance %s in %s: %w", id, svc, model.ErrNotFound)
	}
	writeJSON(w, fromInstance(svc, inst))
	return nil
}

func (s *Server) httpList(w http.ResponseWriter, r *http.Request, svc model.ServiceKey) error {
	healthyOnly, err := formBool(r, false, "healthyOnly")
	if err != nil {
		return err
	}
	insts, _, err := s.b.Instances(r.Context(), svc, backends.ReadOptions{})
	if err != nil {
		return err
	}
	out := info(svc, r.Form.Get("clusters"), insts, healthyOnly, s.threshold(r.Context(), svc), uint64(time.Now().UnixMilli()))
	out.Name = svc.Group + groupSep + svc.Service // the v1 API's full name
	writeJSON(w, out)
	return nil
}

// beat is a beat's instance, from the beat parameter (JSON) or the form.
type beat struct {
	IP          string `json:"ip"`
	Port        uint64 `json:"port"`
	Cluster     string `json:"cluster"`
	ServiceName string `json:"serviceName"`
	svc         model.ServiceKey
}

func formBeat(r *http.Request) (beat, []acl.Resource, error) {
	var b beat
	if v := r.Form.Get("beat"); v != "" {
		if err := json.Unmarshal([]byte(v), &b); err != nil {
			return beat{}, nil, model.Invalid("beat", "not a beat: %v", err)
		}
	} else {
		b.IP, b.Cluster = r.Form.Get("ip"), r.Form.Get("clusterName")
		b.Port, _ = strconv.ParseUint(r.Form.Get("port"), 10, 16)
	}
	var err error
	b.svc, err = serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), cmp.Or(r.Form.Get("serviceName"), b.ServiceName))
	return b, []acl.Resource{serviceRes(b.svc)}, err
}

// httpBeat keeps an ephemeral instance registered over HTTP alive; an
// instance Junction does not have is answered with code 20404, on which
// the client registers it again.
func (s *Server) httpBeat(w http.ResponseWriter, r *http.Request, b beat) error {
	type beatResponse struct {
		ClientBeatInterval int64 `json:"clientBeatInterval"`
		Code               int   `json:"code"`
		LightBeatEnabled   bool  `json:"lightBeatEnabled"`
	}
	inst, found := s.find(r.Context(), b.svc, instanceID(b.IP, b.Port, b.Cluster))
	if !found || !s.beating(inst.Session) {
		writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 20404})
		return nil
	}
	s.beat(inst.Session)
	if _, err := s.b.KeepAlive(r.Context(), inst.Session); err != nil {
		if errors.Is(err, model.ErrSessionExpired) {
			writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 20404})
			return nil
		}
		return err
	}
	writeJSON(w, beatResponse{ClientBeatInterval: 5000, Code: 10200, LightBeatEnabled: true})
	return nil
}

// formScope names a list's namespace and group; a token is needed, and
// each service is filtered (mayRead).
func formScope(r *http.Request) (model.ServiceKey, []acl.Resource, error) {
	scope, err := serviceKey(r.Form.Get("namespaceId"), r.Form.Get("groupName"), "-")
	return scope, nil, err
}

func (s *Server) httpServices(w http.ResponseWriter, r *http.Request, scope model.ServiceKey) error {
	ns, group := scope.Namespace, scope.Group
	list, _, err := s.b.Services(r.Context(), ns, group, model.ServiceKey{Namespace: ns}, 0, backends.ReadOptions{})
	if err != nil {
		return err
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
	return nil
}

// formConfigOf names a request's config item, and the resource decided.
func formConfigOf(r *http.Request) (model.ConfigKey, []acl.Resource, error) {
	key, err := configKey(r.Form.Get("tenant"), r.Form.Get("group"), r.Form.Get("dataId"))
	return key, []acl.Resource{configRes(key)}, err
}

func (s *Server) httpGetConfig(w http.ResponseWriter, r *http.Request, key model.ConfigKey) error {
	release, _, err := s.b.GetConfig(r.Context(), key, backends.ReadOptions{})
	if errors.Is(err, model.ErrNotFound) {
		http.Error(w, "config data not exist", http.StatusNotFound) // as Nacos answers it
		return nil
	}
	if err != nil {
		return err
	}
	cfg := s.effective(r.Context(), key, &release, r.Form.Get("tag"))
	w.Header().Set("Content-MD5", cfg.MD5)
	w.Header().Set("Config-Type", cfg.ContentType)
	w.Header().Set("Last-Modified", cfg.Updated.UTC().Format(http.TimeFormat))
	writeText(w, string(cfg.Content))
	return nil
}

func (s *Server) httpPublish(w http.ResponseWriter, r *http.Request, key model.ConfigKey) error {
	req := configPublishRequest{configRequest: configRequest{Group: key.Group, DataID: key.DataID, Tenant: key.Namespace},
		Content: r.Form.Get("content"), CasMd5: r.Form.Get("casMd5"), AdditionMap: map[string]string{"type": r.Form.Get("type"),
			"betaIps": r.Header.Get("betaIps"), "tag": r.Form.Get("tag"), "encryptedDataKey": r.Form.Get("encryptedDataKey")}}
	if err := s.publish(r.Context(), key, &req); err != nil {
		return err
	}
	writeText(w, "true")
	return nil
}

// httpRemove deletes an item; one that does not exist is removed too, as
// Nacos answers.
func (s *Server) httpRemove(w http.ResponseWriter, r *http.Request, key model.ConfigKey) error {
	if err := s.deleteConfig(r.Context(), key); err != nil && !errors.Is(err, model.ErrNotFound) {
		return err
	}
	writeText(w, "true")
	return nil
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

// formListening names a long poll's configs, each decided.
func formListening(r *http.Request) ([]listenKey, []acl.Resource, error) {
	keys, err := parseListening(r.Form.Get("Listening-Configs"))
	res := make([]acl.Resource, len(keys))
	for i, k := range keys {
		res[i] = configRes(k.key)
	}
	return keys, res, err
}

// httpListen is the long poll: it answers at once with the configs whose
// md5 differs from the client's, otherwise when one of them changes, or
// empty when Long-Pulling-Timeout (30 s by default) passes.
func (s *Server) httpListen(w http.ResponseWriter, r *http.Request, keys []listenKey) error {
	timeout := 30 * time.Second
	if v := r.Header.Get("Long-Pulling-Timeout"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return model.Invalid("Long-Pulling-Timeout", "%q is not milliseconds", v)
		}
		timeout = min(time.Duration(ms)*time.Millisecond, maxLongPoll)
	}
	ctx := r.Context()
	var changed []listenKey
	revs := make([]int64, len(keys))
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
			return err
		}
		revs[i] = rev
		if !sameMD5(cur, k.md5) {
			changed = append(changed, k)
		}
	}
	if len(changed) == 0 && timeout > 0 && len(keys) > 0 {
		changed = s.waitChange(ctx, keys, revs, grays, timeout)
		// Held up to two minutes: the token must still be good.
		if err := stillAllowed(ctx); err != nil {
			return err
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
	return nil
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
		w, err := s.cfg.Watches.Watch(ctx, backends.WatchRequest{Config: &k.key, FromRevision: revs[i]})
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
				if e.Type == model.EventReset {
					// A RESET past the read (the watch's history began
					// after it) may change nothing: only a content the
					// client does not have is news.
					if cur, _, err := s.current(ctx, k.key); err == nil && sameMD5(cur, k.md5) {
						continue
					}
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
