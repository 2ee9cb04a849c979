package health

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts probes, failures, transitions and probe latency, by check
// kind. It implements Observer.
type Metrics struct {
	probes      *prometheus.CounterVec
	failures    *prometheus.CounterVec
	transitions *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

// NewMetrics registers the health-check metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_health_checks_total",
			Help: "Health-check probes run, by kind."}, []string{"kind"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_health_check_failures_total",
			Help: "Health-check probes that failed, by kind."}, []string{"kind"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "junction_health_transitions_total",
			Help: "Health transitions decided by the thresholds, by kind and new state."}, []string{"kind", "to"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "junction_health_check_duration_seconds",
			Help: "Health-check probe latency, by kind.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}, []string{"kind"}),
	}
	reg.MustRegister(m.probes, m.failures, m.transitions, m.latency)
	return m
}

// Probed implements Observer.
func (m *Metrics) Probed(kind Kind, r Result) {
	m.probes.WithLabelValues(string(kind)).Inc()
	if !r.Pass {
		m.failures.WithLabelValues(string(kind)).Inc()
	}
	m.latency.WithLabelValues(string(kind)).Observe(r.Latency.Seconds())
}

// Transitioned implements Observer.
func (m *Metrics) Transitioned(kind Kind, healthy bool) {
	to := "unhealthy"
	if healthy {
		to = "healthy"
	}
	m.transitions.WithLabelValues(string(kind), to).Inc()
}
