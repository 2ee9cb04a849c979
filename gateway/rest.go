package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
	"github.com/junctionhq/junction/gateway/acl"
	"github.com/junctionhq/junction/gateway/ui"
	"github.com/junctionhq/junction/model"
)

var jsonPB = &runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}

func (s *Server) restHandler() (http.Handler, error) {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, jsonPB),
		runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, err)
		}),
		// Only the Authorization header (and the client's address, which the
		// REST gateway adds itself) and the client's own name and labels
		// (Junction-Client-Id, Junction-Client-Labels: what it says, never
		// proof) reach the gRPC services: no other header becomes metadata,
		// so a client cannot smuggle any in (Grpc-Metadata-Junction-Caller
		// and the like).
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			switch h = strings.ToLower(h); h {
			case clientIDHeader, clientLabelsHeader:
				return h, true
			}
			return "", false
		}),
		runtime.WithMetadata(restMetadata(s.cfg.TLS)),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			writeJSONError(w, code, http.StatusText(code), "no route for "+r.Method+" "+r.URL.Path, "")
		}),
	)
	ctx := context.Background()
	for _, register := range []func(context.Context, *runtime.ServeMux) error{
		func(ctx context.Context, mux *runtime.ServeMux) error {
			return pb.RegisterRegistryServiceHandler(ctx, mux, s.conn)
		},
		func(ctx context.Context, mux *runtime.ServeMux) error {
			return pb.RegisterConfigServiceHandler(ctx, mux, s.conn)
		},
		func(ctx context.Context, mux *runtime.ServeMux) error {
			return pb.RegisterStatusServiceHandler(ctx, mux, s.conn)
		},
		func(ctx context.Context, mux *runtime.ServeMux) error {
			return pb.RegisterClusterServiceHandler(ctx, mux, s.conn)
		},
		func(ctx context.Context, mux *runtime.ServeMux) error {
			return pb.RegisterAclServiceHandler(ctx, mux, s.conn)
		},
	} {
		if err := register(ctx, gw); err != nil {
			return nil, err
		}
	}
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxContentSize)+1<<20)
		gw.ServeHTTP(w, r)
	})
	configs := pb.NewConfigServiceClient(s.conn)
	mux := http.NewServeMux()
	const configPath = "/v1/namespaces/{namespace}/groups/{group}/configs/{dataId}"
	mux.HandleFunc("GET "+configPath, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.PathValue("dataId"), ":watch") {
			limited.ServeHTTP(w, r)
			return
		}
		s.getConfigRaw(w, r, configs)
	})
	mux.HandleFunc("PUT "+configPath, func(w http.ResponseWriter, r *http.Request) { s.putConfigRaw(w, r, configs) })
	mux.HandleFunc("GET /v1/namespaces/{namespace}/configs:export", func(w http.ResponseWriter, r *http.Request) {
		s.exportRaw(w, r, configs)
	})
	mux.HandleFunc("POST /v1/namespaces/{namespace}/configs:import", func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/zip" {
			limited.ServeHTTP(w, r) // the JSON form, archive in base64
			return
		}
		s.importRaw(w, r, configs)
	})
	metricsHandler := promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}).ServeHTTP
	if !s.cfg.MetricsPublic {
		metricsHandler = s.auth.guardHTTP(read(global(acl.KindCluster, "metrics")), metricsHandler)
	}
	mux.HandleFunc("GET /metrics", metricsHandler)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	// A snapshot holds the whole store, the ACL's record with it: the
	// management token's only.
	snapshot := global(acl.KindSnapshot, "snapshot")
	mux.HandleFunc("GET /v1/snapshot", s.auth.guardHTTP(managementOnly(read(snapshot)), s.saveSnapshot))
	mux.HandleFunc("PUT /v1/snapshot", s.auth.guardHTTP(managementOnly(write(snapshot)), s.restoreSnapshot))
	if s.cfg.Pprof {
		// Profiles show the process's memory, secrets with it: with
		// access control on, the management token's only.
		guard := func(h http.HandlerFunc) http.HandlerFunc {
			return s.auth.guardHTTP(managementOnly(read(global(acl.KindCluster, "pprof"))), h)
		}
		// Not /debug/pprof/cmdline: the command line may hold secrets
		// (--join-token, a store's password).
		mux.HandleFunc("GET /debug/pprof/", guard(pprof.Index)) // and the named profiles under it
		mux.HandleFunc("GET /debug/pprof/profile", guard(pprof.Profile))
		mux.HandleFunc("GET /debug/pprof/symbol", guard(pprof.Symbol))
		mux.HandleFunc("GET /debug/pprof/trace", guard(pprof.Trace))
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(pb.OpenAPI)
	})
	if s.cfg.UI {
		// The console's files are open, like /healthz: they hold nothing
		// but code; every call they make needs its token like any other.
		console, err := ui.Handler()
		if err != nil {
			return nil, err
		}
		mux.Handle("GET "+ui.Prefix, console)
		mux.Handle("GET /ui", http.RedirectHandler(ui.Prefix, http.StatusMovedPermanently))
	}
	mux.Handle("/", limited)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: s.cfg.BodyTimeout}
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// idleBody bounds the wait for each read of a request body, so that a
// client that stops sending holds a handler and a connection only that long
// (the server's ReadTimeout cannot: it would also end watches).
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle)) // ErrNotSupported: unbounded, as before
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// All read: a streamed response must not meet the deadline. After
		// any other error the deadline stays, so that the server's discard
		// of the unread rest fails too and the connection closes.
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// readyz reports ready when the backend serves a linearizable read.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	st, err := s.b.Status(ctx)
	if err == nil {
		_, _, err = s.b.ListConfigs(ctx, model.DefaultNamespace, "junction-readiness-probe", backends.ReadOptions{})
		if errors.Is(err, model.ErrUnsupported) { // a store that cannot list: one read instead
			_, _, err = s.b.GetConfig(ctx, model.ConfigKey{Namespace: model.DefaultNamespace, Group: "junction-readiness-probe", DataID: "probe"}, backends.ReadOptions{})
			if errors.Is(err, model.ErrNotFound) {
				err = nil
			}
		}
	}
	if err != nil {
		writeError(w, err)
		return
	}
	_, _ = io.WriteString(w, "ready: "+st.Backend+" at revision "+strconv.FormatInt(st.Revision, 10)+"\n")
}

// errorBody is the JSON shape of every REST error.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeJSONError(w http.ResponseWriter, httpStatus int, code, msg, field string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(errorBody{Code: code, Message: msg, Field: field})
}

func writeError(w http.ResponseWriter, err error) {
	var he *runtime.HTTPStatusError
	if errors.As(err, &he) {
		writeJSONError(w, he.HTTPStatus, http.StatusText(he.HTTPStatus), he.Err.Error(), "")
		return
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "TOO_LARGE", "request body exceeds the limit", "")
		return
	}
	st := pb.Status(err)
	reason, field, httpStatus := pb.Reason(st)
	if st.Code() == codes.InvalidArgument && field == "" && reason == "INVALID_ARGUMENT" {
		// grpc-gateway's own decoding errors: malformed JSON, unknown fields, bad query values.
		field = "body"
	}
	writeJSONError(w, httpStatus, reason, st.Message(), field)
}

// contentTypes maps HTTP media types to config content types.
var contentTypes = map[string]string{
	"application/json": model.ContentJSON, "text/json": model.ContentJSON,
	"application/yaml": model.ContentYAML, "application/x-yaml": model.ContentYAML, "text/yaml": model.ContentYAML,
	"text/x-yaml": model.ContentYAML, "text/x-java-properties": model.ContentProperties,
	"application/xml": model.ContentXML, "text/xml": model.ContentXML,
	"application/toml": model.ContentTOML, "text/plain": model.ContentText,
}

var mediaTypes = map[string]string{
	model.ContentJSON: "application/json", model.ContentYAML: "application/yaml",
	model.ContentProperties: "text/x-java-properties", model.ContentXML: "application/xml",
	model.ContentTOML: "application/toml", model.ContentText: "text/plain",
}

// putConfigRaw stores the request body as the content: what a user of
// `curl --data-binary @app.yaml` expects.
func (s *Server) putConfigRaw(w http.ResponseWriter, r *http.Request, c pb.ConfigServiceClient) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "ifRevision", "type", "validate", "message", "grayLabels", "grayIps", "grayPercent":
		default:
			writeError(w, model.Invalid(k, "unknown parameter; known: ifRevision, type, validate, message, grayLabels, grayIps, grayPercent"))
			return
		}
	}
	req := &pb.PutConfigRequest{Namespace: r.PathValue("namespace"), Group: r.PathValue("group"), DataId: r.PathValue("dataId"),
		ContentType: q.Get("type"), Message: q.Get("message")}
	if req.ContentType == "" {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil {
			req.ContentType = contentTypes[mt]
		}
	}
	if v := q.Get("validate"); v != "" {
		validate, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, model.Invalid("validate", "%q is not true or false", v))
			return
		}
		req.NoValidate = !validate
	}
	if v := q.Get("ifRevision"); v != "" {
		rev, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			writeError(w, model.Invalid("ifRevision", "%q is not a revision number", v))
			return
		}
		req.IfRevision = &rev
	}
	gray, err := grayQuery(q)
	if err != nil {
		writeError(w, err)
		return
	}
	req.Gray = gray
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxContentSize)+1))
	if err != nil {
		writeError(w, model.Invalid("body", "could not read the request body: %v", err))
		return
	}
	if len(body) > s.cfg.MaxContentSize {
		writeError(w, model.TooLarge("content", len(body), s.cfg.MaxContentSize))
		return
	}
	if err := model.ValidateContent(body, s.cfg.MaxContentSize); err != nil {
		writeError(w, err)
		return
	}
	req.Content = string(body)
	resp, err := c.PutConfig(restCall(r, s.cfg.TLS), req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("ETag", etag(resp.Config.Revision))
	writeProto(w, resp)
}

// grayQuery reads a raw publish's gray rule: grayLabels (NAME=VALUE,…),
// grayIps (IP,…) and grayPercent; nil when none is given (a release).
// The rule itself is validated where every publish's is.
func grayQuery(q url.Values) (*pb.GrayRule, error) {
	if !q.Has("grayLabels") && !q.Has("grayIps") && !q.Has("grayPercent") {
		return nil, nil
	}
	rule := &pb.GrayRule{}
	for _, kv := range strings.Split(q.Get("grayLabels"), ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, model.Invalid("grayLabels", "%q is not NAME=VALUE", kv)
		}
		if rule.Labels == nil {
			rule.Labels = map[string]string{}
		}
		rule.Labels[name] = value
	}
	for _, ip := range strings.Split(q.Get("grayIps"), ",") {
		if ip = strings.TrimSpace(ip); ip != "" {
			rule.Ips = append(rule.Ips, ip)
		}
	}
	if v := q.Get("grayPercent"); v != "" {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, model.Invalid("grayPercent", "%q is not a whole number", v)
		}
		rule.Percent = int32(n)
	}
	return rule, nil
}

// exportRaw answers an export with the zip itself, unless the client
// accepts only JSON.
func (s *Server) exportRaw(w http.ResponseWriter, r *http.Request, c pb.ConfigServiceClient) {
	resp, err := c.ExportConfigs(restCall(r, s.cfg.TLS), &pb.ExportConfigsRequest{Namespace: r.PathValue("namespace"),
		Group: r.URL.Query().Get("group")}, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		writeError(w, err)
		return
	}
	if accept := r.Header.Get("Accept"); strings.Contains(accept, "application/json") && !strings.Contains(accept, "application/zip") {
		writeProto(w, resp)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", "junction-"+r.PathValue("namespace")+".zip"))
	w.Header().Set("X-Junction-Revision", strconv.FormatInt(resp.Revision, 10))
	_, _ = w.Write(resp.Archive)
}

// importRaw imports a zip sent as the body: policy, dryRun, validate and
// message are query parameters.
func (s *Server) importRaw(w http.ResponseWriter, r *http.Request, c pb.ConfigServiceClient) {
	q := r.URL.Query()
	req := &pb.ImportConfigsRequest{Namespace: r.PathValue("namespace"), Message: q.Get("message")}
	for k := range q {
		switch k {
		case "policy":
			p, ok := pb.ImportPolicy_value[strings.ToUpper(q.Get(k))]
			if !ok {
				writeError(w, model.Invalid("policy", "%q is not abort, skip or overwrite", q.Get(k)))
				return
			}
			req.Policy = pb.ImportPolicy(p)
		case "dryRun", "validate":
			v, err := strconv.ParseBool(q.Get(k))
			if err != nil {
				writeError(w, model.Invalid(k, "%q is not true or false", q.Get(k)))
				return
			}
			req.DryRun = req.DryRun || (k == "dryRun" && v)
			req.NoValidate = req.NoValidate || (k == "validate" && !v)
		case "message":
		default:
			writeError(w, model.Invalid(k, "unknown parameter; known: policy, dryRun, validate, message"))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.maxImport())+1))
	if err != nil {
		writeError(w, model.Invalid("body", "could not read the request body: %v", err))
		return
	}
	if len(body) > s.maxImport() {
		writeError(w, model.TooLarge(archiveFieldName, len(body), s.maxImport()))
		return
	}
	req.Archive = body
	resp, err := c.ImportConfigs(restCall(r, s.cfg.TLS), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeProto(w, resp)
}

// getConfigRaw returns the content with its revision in ETag, or the JSON
// envelope when the client accepts application/json.
func (s *Server) getConfigRaw(w http.ResponseWriter, r *http.Request, c pb.ConfigServiceClient) {
	q := r.URL.Query()
	stale, _ := strconv.ParseBool(q.Get("stale"))
	release, _ := strconv.ParseBool(q.Get("release"))
	resp, err := c.GetConfig(restCall(r, s.cfg.TLS), &pb.GetConfigRequest{Namespace: r.PathValue("namespace"),
		Group: r.PathValue("group"), DataId: r.PathValue("dataId"), Stale: stale, Release: release})
	if err != nil {
		writeError(w, err)
		return
	}
	cfg := resp.Config
	tag := etag(cfg.Revision)
	w.Header().Set("ETag", tag)
	w.Header().Set("X-Junction-Revision", strconv.FormatInt(resp.Revision, 10))
	w.Header().Set("X-Junction-Consistency", resp.Consistency)
	if resp.Staleness != nil {
		w.Header().Set("X-Junction-Staleness", resp.Staleness.AsDuration().String())
	}
	if r.Header.Get("If-None-Match") == tag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeProto(w, resp)
		return
	}
	w.Header().Set("Content-Type", mediaTypes[cfg.ContentType]+"; charset=utf-8")
	w.Header().Set("X-Junction-Content-Type", cfg.ContentType)
	w.Header().Set("X-Junction-Md5", cfg.Md5)
	_, _ = io.WriteString(w, cfg.Content)
}

// restCall is the context of a gRPC call a REST handler makes for its
// request: it carries the request's credentials and client address, as the
// REST gateway's own calls do, so that the authorizer sees the same caller.
func restCall(r *http.Request, t *TLS) context.Context {
	var kv []string
	for _, v := range r.Header.Values("Authorization") {
		kv = append(kv, "authorization", v)
	}
	kv = append(kv, "x-forwarded-for", hostOf(r.RemoteAddr))
	for _, h := range []string{clientIDHeader, clientLabelsHeader} {
		if v := r.Header.Get(h); v != "" {
			kv = append(kv, h, v)
		}
	}
	for _, id := range requestIdentities(r, t) {
		kv = append(kv, certHeader, id)
	}
	return metadata.AppendToOutgoingContext(r.Context(), kv...)
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

func writeProto(w http.ResponseWriter, m proto.Message) {
	b, err := jsonPB.Marshal(m)
	if err != nil {
		writeError(w, status.Error(codes.Internal, err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
