package gateway

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/junctionhq/junction/api/junction/v1"
)

// BuildInfo says which build of Junction a server runs.
type BuildInfo struct {
	// Version is the release version; "dev" outside a release build.
	Version string
	// Commit is the source's commit, with "-dirty" when the tree had
	// uncommitted changes.
	Commit string
	// Date is the commit's time (RFC 3339): a reproducible build's date.
	Date string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// ReadBuildInfo returns the running binary's build: version, and commit
// and date where the build set them (with -ldflags -X: a build outside a
// git checkout, such as a container image's); otherwise the commit and its
// date as the Go toolchain recorded them (runtime/debug.BuildInfo), and
// the Go version. What was recorded nowhere (go test) is "unknown".
func ReadBuildInfo(version, commit, date string) BuildInfo {
	b := vcsBuildInfo(version)
	if commit != "" {
		b.Commit = commit
	}
	if date != "" {
		b.Date = date
	}
	return b
}

// vcsBuildInfo is the build with the commit and date the Go toolchain
// recorded.
func vcsBuildInfo(version string) BuildInfo {
	b := BuildInfo{Version: version, Commit: "unknown", Date: "unknown", GoVersion: runtime.Version()}
	if b.Version == "" {
		b.Version = "dev"
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Date = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Commit != "unknown" {
		b.Commit += "-dirty"
	}
	return b
}

func (b BuildInfo) proto() *pb.BuildInfo {
	return &pb.BuildInfo{Version: b.Version, Commit: b.Commit, Date: b.Date, GoVersion: b.GoVersion}
}

// collector is the junction_build_info metric: 1, labelled with the build.
func (b BuildInfo) collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "junction_build_info",
		Help:        "The server's build: always 1, labelled with its version, commit, commit date and Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "date": b.Date, "goversion": b.GoVersion}})
	g.Set(1)
	return g
}
