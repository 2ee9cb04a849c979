package nacos

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// The /nacos/v2 open API (Nacos 2.x): the v1 operations with namespaceId
// for a config's tenant, answered in an envelope {code, message, data}.
// Each is the v1 handler, whose answer is wrapped: one implementation of
// each operation, and so of its access check.

// v2Routes maps each v2 route onto the v1 route it is.
var v2Routes = map[string]string{
	"POST /nacos/v2/ns/instance":     "POST /nacos/v1/ns/instance",
	"PUT /nacos/v2/ns/instance":      "PUT /nacos/v1/ns/instance",
	"DELETE /nacos/v2/ns/instance":   "DELETE /nacos/v1/ns/instance",
	"GET /nacos/v2/ns/instance":      "GET /nacos/v1/ns/instance",
	"GET /nacos/v2/ns/instance/list": "GET /nacos/v1/ns/instance/list",
	"PUT /nacos/v2/ns/instance/beat": "PUT /nacos/v1/ns/instance/beat",
	"GET /nacos/v2/ns/service/list":  "GET /nacos/v1/ns/service/list",
	"GET /nacos/v2/cs/config":        "GET /nacos/v1/cs/configs",
	"POST /nacos/v2/cs/config":       "POST /nacos/v1/cs/configs",
	"DELETE /nacos/v2/cs/config":     "DELETE /nacos/v1/cs/configs",
}

// v2Codes are the envelope's codes for the statuses the v1 handlers give.
var v2Codes = map[int]int{
	http.StatusBadRequest:          10000, // parameter error
	http.StatusUnauthorized:        40100,
	http.StatusForbidden:           40300,
	http.StatusNotFound:            20004, // resource not found
	http.StatusConflict:            20005,
	http.StatusTooManyRequests:     42900,
	http.StatusNotImplemented:      50100,
	http.StatusServiceUnavailable:  50300,
	http.StatusInternalServerError: 30000,
}

// v2 serves a v2 route with its v1 handler and wraps the answer.
func (s *Server) v2(v1 func(*Server, http.ResponseWriter, *http.Request), w http.ResponseWriter, r *http.Request) {
	if ns := r.Form.Get("namespaceId"); ns != "" && r.Form.Get("tenant") == "" {
		r.Form.Set("tenant", ns) // v2 names a config's namespace so too
	}
	rec := &recorder{header: http.Header{}, Code: http.StatusOK}
	v1(s, rec, r)
	raw := rec.body.Bytes() // a config's content, as it is
	body := bytes.TrimSpace(raw)
	env := struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    any    `json:"data"`
	}{Message: "success"}
	if rec.Code != http.StatusOK {
		env.Code = v2Codes[rec.Code]
		if env.Code == 0 {
			env.Code = 30000
		}
		env.Message = strings.TrimPrefix(string(body), "caused: ")
	} else if strings.HasPrefix(rec.header.Get("Content-Type"), "application/json") {
		env.Data = json.RawMessage(body)
	} else {
		switch string(body) {
		case "true":
			env.Data = true
		default:
			env.Data = string(raw)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rec.Code)
	_ = json.NewEncoder(w).Encode(env)
}

// recorder keeps a v1 handler's answer for v2 to wrap.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	Code   int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(code int)        { r.Code = code }
