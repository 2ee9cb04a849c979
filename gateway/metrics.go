package gateway

import (
	"context"
	"path"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	pb "github.com/junctionhq/junction/api/junction/v1"
	"github.com/junctionhq/junction/backends"
)

type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
	topics           prometheus.Gauge
	subscribers      prometheus.Gauge
	resets           prometheus.Counter
	subscriberResets prometheus.Counter
	authFailures     prometheus.Counter
	auditEvents      *prometheus.CounterVec
}

func newMetrics(build BuildInfo) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_requests_total",
			Help: "API requests by method and result reason."}, []string{"method", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "junction_request_duration_seconds",
			Help: "Latency of unary API requests.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{"method"}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{Name: "junction_watch_topics",
			Help: "Watched services and configs, each with one backend watch."}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "junction_watch_subscribers",
			Help: "Open watch streams."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "junction_backend_watch_resets_total",
			Help: "RESET events received from the backend."}),
		subscriberResets: prometheus.NewCounter(prometheus.CounterOpts{Name: "junction_watch_resets_sent_total",
			Help: "RESET events sent to subscribers (initial state, lag or backend gap)."}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "junction_auth_failures_total",
			Help: "Requests refused because their token was missing, malformed, unknown or expired."}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_audit_events_total",
			Help: "Audited writes and denials, by outcome."}, []string{"outcome"}),
	}
	m.reg.MustRegister(build.collector(), m.requests, m.latency, m.topics, m.subscribers, m.resets, m.subscriberResets, m.authFailures, m.auditEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// backendGauges exports the backend's gauges, each as
// junction_backend_NAME.
func (m *metrics) backendGauges(g backends.Gauges) {
	for _, gauge := range g.Gauges() {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "junction_backend_" + gauge.Name, Help: gauge.Help}, gauge.Value))
	}
}

func reasonOf(err error) string {
	if err == nil {
		return "OK"
	}
	reason, _, _ := pb.Reason(status.Convert(err))
	return reason
}

// unary records metrics and turns portable errors into gRPC statuses.
func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	if err != nil {
		err = pb.Status(err).Err()
	}
	method := path.Base(info.FullMethod)
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(method, reasonOf(err)).Inc()
	return resp, err
}

// stream does the same for streaming calls.
func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	err := handler(srv, ss)
	if err != nil {
		err = pb.Status(err).Err()
	}
	m.requests.WithLabelValues(path.Base(info.FullMethod), reasonOf(err)).Inc()
	return err
}
