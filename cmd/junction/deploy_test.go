package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8syaml "sigs.k8s.io/yaml"

	"github.com/junctionhq/junction/conformance/servertest"
)

// The files of deploy/ and the Dockerfile, checked against the binary they
// run: the flags and settings they pass must be ones it takes.

const deployDir = "../../deploy"

// needTool returns the path of a tool the deployment checks run; without
// it the test fails where JUNCTION_REQUIRE_TOOLS names it (CI does, and
// .ci/deps installs it), and skips elsewhere.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if slices.Contains(strings.Split(os.Getenv("JUNCTION_REQUIRE_TOOLS"), ","), name) {
		t.Fatalf("%s is required (apt-get install %s; .ci/deps does): %v", name, pkg, err)
	}
	t.Skipf("%s not installed (apt-get install %s)", name, pkg)
	return ""
}

// acceptsSettings checks that the binary takes args and env as
// `junction server` settings, as the server checks them before it opens
// its store (--check-config), and returns the configuration they make.
func acceptsSettings(t *testing.T, env []string, args ...string) map[string]string {
	t.Helper()
	check := exec.Command(binary(t), append(append([]string{}, args...), "--check-config")...)
	check.Env = append(os.Environ(), env...)
	if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "the settings are valid") {
		t.Fatalf("junction %v with %v does not hold: %v\n%s", args, env, err, out)
	}
	cmd := exec.Command(binary(t), append(append([]string{}, args...), "--print-config")...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("junction %v with %v is refused: %v\n%s", args, env, err, out)
	}
	var m map[string]string
	if err := yaml.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The systemd unit passes systemd-analyze verify with no word said, is a
// hardened Type=notify service, and its settings file and command line are
// ones the server takes.
func TestSystemdUnit(t *testing.T) {
	analyze := needTool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "junction.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "DynamicUser=yes", "ProtectSystem=strict",
		"StateDirectory=junction", "NoNewPrivileges=yes", "EnvironmentFile=-/etc/junction/junction.env"} {
		if !bytes.Contains(unit, []byte("\n"+want+"\n")) {
			t.Errorf("the unit has no %s", want)
		}
	}
	// verify checks that ExecStart's binary exists: this test's build.
	dir := t.TempDir()
	copyUnit := bytes.ReplaceAll(unit, []byte("/usr/local/bin/junction"), []byte(binary(t)))
	if err := os.WriteFile(filepath.Join(dir, "junction.service"), copyUnit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "junction.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 { // it warns of unknown keys and still exits 0
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=/usr/local/bin/junction (.*)$`).FindSubmatch(unit)
	if exec == nil {
		t.Fatal("no ExecStart")
	}
	args := strings.Fields(string(exec[1]))
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "/etc/junction/junction.yaml", filepath.Join(deployDir, "systemd", "junction.yaml"))
	}
	got := acceptsSettings(t, []string{"JUNCTION_DATA_DIR=/var/lib/junction"}, args...)
	if got["data-dir"] != "/var/lib/junction" || got["log-format"] != "json" {
		t.Errorf("the unit's settings: %v", got)
	}
}

// readManifests decodes a multi-document YAML file strictly (unknown or
// misspelt fields are errors) into the Kubernetes types of its kinds.
func readManifests(t *testing.T, path string) (map[string]*corev1.Service, *appsv1.StatefulSet, *policyv1.PodDisruptionBudget, *networkingv1.NetworkPolicy) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]*corev1.Service{}
	var sts *appsv1.StatefulSet
	var pdb *policyv1.PodDisruptionBudget
	var np *networkingv1.NetworkPolicy
	for i, doc := range regexp.MustCompile(`(?m)^---$`).Split(string(b), -1) {
		var head struct{ APIVersion, Kind string }
		if err := k8syaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		var svc *corev1.Service
		switch head.APIVersion + "/" + head.Kind {
		case "v1/Service":
			svc = &corev1.Service{}
			obj = svc
		case "apps/v1/StatefulSet":
			sts = &appsv1.StatefulSet{}
			obj = sts
		case "policy/v1/PodDisruptionBudget":
			pdb = &policyv1.PodDisruptionBudget{}
			obj = pdb
		case "networking.k8s.io/v1/NetworkPolicy":
			np = &networkingv1.NetworkPolicy{}
			obj = np
		default:
			t.Fatalf("document %d: unexpected %s %s", i, head.APIVersion, head.Kind)
		}
		if err := k8syaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("document %d (%s): %v", i, head.Kind, err)
		}
		if svc != nil {
			services[svc.Name] = svc
		}
	}
	return services, sts, pdb, np
}

// The Kubernetes manifests decode strictly into the API's types, and hang
// together: a headless peer service that publishes unready nodes, a
// StatefulSet of 3 started in parallel whose selector matches its pods,
// readiness on /readyz, a disruption budget of one, and node arguments the
// server takes, naming each node by its stable DNS name.
func TestKubernetesManifests(t *testing.T) {
	services, sts, pdb, np := readManifests(t, filepath.Join(deployDir, "kubernetes", "junction.yaml"))
	if sts == nil || pdb == nil || np == nil {
		t.Fatal("no StatefulSet, PodDisruptionBudget or NetworkPolicy")
	}
	// The Raft port: from the nodes only.
	raftOpen := false
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.IntValue() == 7481 && len(rule.From) == 0 {
				raftOpen = true
			}
		}
	}
	if raftOpen || !labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(labels.Set(sts.Spec.Template.Labels)) {
		t.Errorf("the network policy leaves the Raft port open, or covers no node: %+v", np.Spec)
	}
	peers := services[sts.Spec.ServiceName]
	switch {
	case peers == nil:
		t.Fatalf("the StatefulSet's service %q is not in the manifests", sts.Spec.ServiceName)
	case peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses:
		t.Errorf("the peer service is not headless with unready addresses published: %+v", peers.Spec)
	}
	if *sts.Spec.Replicas != 3 || sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("%d replicas, %s: want 3, started in parallel", *sts.Spec.Replicas, sts.Spec.PodManagementPolicy)
	}
	pods := labels.Set(sts.Spec.Template.Labels)
	selects := func(m map[string]string) bool { return len(m) > 0 && labels.SelectorFromSet(m).Matches(pods) }
	if !selects(sts.Spec.Selector.MatchLabels) {
		t.Error("the StatefulSet's selector does not match its pods")
	}
	for name, s := range services {
		if !selects(s.Spec.Selector) {
			t.Errorf("service %s selects no node", name)
		}
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || !selects(pdb.Spec.Selector.MatchLabels) {
		t.Errorf("the disruption budget: %+v", pdb.Spec)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("readiness probe %+v, want GET /readyz over HTTPS", c.ReadinessProbe)
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("the container's security context: %+v", c.SecurityContext)
	}
	// Each node's arguments, as Kubernetes expands them for junction-1.
	vars := map[string]string{"POD_NAME": "junction-1", "POD_NAMESPACE": "prod"}
	var env []string
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env = append(env, "JUNCTION_"+strings.TrimPrefix(e.Name, "JUNCTION_")+"="+e.Value)
		}
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = regexp.MustCompile(`\$\((\w+)\)`).ReplaceAllStringFunc(a, func(m string) string { return vars[m[2:len(m)-1]] })
	}
	got := acceptsSettings(t, env, args...)
	self := "junction-1." + sts.Spec.ServiceName + ".prod.svc.cluster.local"
	if got["node-id"] != self+":7480" || got["raft-addr"] != self+":7481" || !strings.Contains(got["peers"], self+":7480="+self+":7481") ||
		strings.Count(got["peers"], "=") != 3 || got["auth"] != "true" || got["tls-cert"] == "" || got["tls-ca"] == "" {
		t.Errorf("junction-1's settings: %v", got)
	}
}

// The compose file's nodes run commands and settings the server takes.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Hostname    string            `yaml:"hostname"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Services) != 3 {
		t.Fatalf("%d services, want 3 nodes", len(f.Services))
	}
	for name, s := range f.Services {
		var env []string
		for k, v := range s.Environment {
			env = append(env, k+"="+v)
		}
		got := acceptsSettings(t, env, s.Command...)
		if got["node-id"] != s.Hostname+":7480" || !strings.Contains(got["peers"], got["node-id"]+"="+got["raft-addr"]) {
			t.Errorf("%s: %v", name, got)
		}
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ op, args string }

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur += line
		op, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(op), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// The Dockerfile, read statically: a final stage from scratch that runs as
// a user other than root, keeps its data in a volume, checks its health
// with `junction ready`, and whose defaults are settings the server takes.
func TestDockerfile(t *testing.T) {
	ins := readDockerfile(t)
	final := 0
	for i, in := range ins {
		if in.op == "FROM" {
			final = i
		}
	}
	if ins[final].args != "scratch" && !strings.HasPrefix(ins[final].args, "gcr.io/distroless/") {
		t.Errorf("the image's base is %q, want scratch or distroless", ins[final].args)
	}
	var env []string
	seen := map[string]string{}
	for _, in := range ins[final:] {
		seen[in.op] = in.args
		if in.op == "ENV" {
			env = append(env, strings.Fields(in.args)...)
		}
	}
	if u := seen["USER"]; u == "" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root") {
		t.Errorf("the image runs as %q, want a user other than root", u)
	}
	if !strings.Contains(seen["VOLUME"], "/data") || seen["EXPOSE"] != "7480" {
		t.Errorf("VOLUME %q, EXPOSE %q", seen["VOLUME"], seen["EXPOSE"])
	}
	if !strings.Contains(seen["HEALTHCHECK"], `"ready"`) {
		t.Errorf("the health check %q does not run junction ready", seen["HEALTHCHECK"])
	}
	got := acceptsSettings(t, env, "server")
	if got["listen"] != "0.0.0.0:7480" || got["data-dir"] != "/data" || got["auth"] != "true" {
		t.Errorf("the image's defaults: %v", got)
	}
}

// The image, built with buildah from Debian, runs: its server answers
// /readyz and its health check command says so. The stage that compiles
// is replaced by this test's static build (--build-context): the build
// machine reaches no registry. Containers run with chroot isolation: the
// default OCI runtime (crun) is refused on this machine ("cgroups in
// hybrid mode not supported").
func TestContainerImage(t *testing.T) {
	buildah := needTool(t, "buildah", "buildah")
	ctxDir := t.TempDir()
	for _, d := range []string{"out/data", "out/tmp", "etc/ssl/certs"} {
		if err := os.MkdirAll(filepath.Join(ctxDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Chmod(filepath.Join(ctxDir, "out/tmp"), 0o1777)
	if certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		_ = os.WriteFile(filepath.Join(ctxDir, "etc/ssl/certs/ca-certificates.crt"), certs, 0o644)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=image-test", "-o", filepath.Join(ctxDir, "out/junction"), ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tag := fmt.Sprintf("localhost/junction-test:%d", os.Getpid())
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(buildah, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("buildah %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("build", "--quiet", "--format", "docker", "--build-context", "build="+ctxDir, "-t", tag, "-f", "../../Dockerfile", "../..")
	t.Cleanup(func() { _ = exec.Command(buildah, "rmi", "-f", tag).Run() })
	if cfg := run("inspect", "--type", "image", "--format", "{{.Docker.Config.User}} {{.Docker.Config.Healthcheck.Test}}", tag); !strings.HasPrefix(cfg, "65532:65532") ||
		!strings.Contains(cfg, "ready") {
		t.Errorf("the image's user and health check: %s", cfg)
	}
	ctr := run("from", "--quiet", tag)
	t.Cleanup(func() { _ = exec.Command(buildah, "rm", ctr).Run() })
	addr := freeAddr(t)
	// As `docker run IMAGE` would, but on loopback and open (a test).
	srv := exec.Command(buildah, "run", "--isolation", "chroot", "--network", "host",
		"-e", "JUNCTION_LISTEN="+addr, "-e", "JUNCTION_AUTH=false", ctr, "--", "/usr/local/bin/junction", "server")
	var log servertest.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
		_ = srv.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command(buildah, "run", "--isolation", "chroot", "--network", "host", ctr, "--",
			"/usr/local/bin/junction", "ready", "--addr", addr).CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image's server never ready: %v %s\n%s", err, out, log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"version":"image-test"`) {
		t.Errorf("the image's server: %s", body)
	}
	if !strings.Contains(log.String(), `"level":"INFO"`) {
		t.Errorf("the image logs no JSON:\n%s", log.String())
	}
}
