// Package kubernetes_test checks the Kubernetes manifests in this directory:
// that they agree with each other (labels, ports, Secret keys, mounted
// paths), and that the container's command line and Secret layout start a
// real `twilioguard serve` on PostgreSQL whose probes pass.
package kubernetes_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"gopkg.in/yaml.v3"

	"github.com/twilioguard/twilioguard/internal/pgtest"
	"github.com/twilioguard/twilioguard/internal/testserver"
)

// The parts of the manifests the tests look at.
type (
	meta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
		GRPC *struct {
			Port int `yaml:"port"`
		} `yaml:"grpc"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Env   []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct{ Name, Key string } `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Resources struct {
			Limits map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		StartupProbe   *probe `yaml:"startupProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		VolumeMounts   []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	deployment struct {
		Metadata meta `yaml:"metadata"`
		Spec     struct {
			Replicas int      `yaml:"replicas"`
			Selector selector `yaml:"selector"`
			Template struct {
				Metadata meta `yaml:"metadata"`
				Spec     struct {
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name   string `yaml:"name"`
						Secret *struct {
							SecretName string `yaml:"secretName"`
							Items      []struct{ Key, Path string }
						} `yaml:"secret"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	service struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Port       int `yaml:"port"`
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	pdb struct {
		Spec struct {
			MinAvailable int      `yaml:"minAvailable"`
			Selector     selector `yaml:"selector"`
		} `yaml:"spec"`
	}
	secret struct {
		Metadata   meta              `yaml:"metadata"`
		StringData map[string]string `yaml:"stringData"`
	}
)

// manifests is every object in the directory, by kind.
type manifests struct {
	deployment deployment
	service    service
	pdb        pdb
	secret     secret
}

func load(t *testing.T) manifests {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	decodeFile(t, "kustomization.yaml", &kust)
	var m manifests
	seen := map[string]bool{}
	for _, file := range append(kust.Resources, "secret.example.yaml") {
		var head struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   meta   `yaml:"metadata"`
		}
		decodeFile(t, file, &head)
		if head.APIVersion == "" || head.Metadata.Name == "" {
			t.Errorf("%s: missing apiVersion or metadata.name", file)
		}
		seen[head.Kind] = true
		switch head.Kind {
		case "Deployment":
			decodeFile(t, file, &m.deployment)
		case "Service":
			decodeFile(t, file, &m.service)
		case "PodDisruptionBudget":
			decodeFile(t, file, &m.pdb)
		case "Secret":
			decodeFile(t, file, &m.secret)
		default:
			t.Errorf("%s: unexpected kind %q", file, head.Kind)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "Secret"} {
		if !seen[kind] {
			t.Fatalf("no %s manifest", kind)
		}
	}
	return m
}

func decodeFile(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

func TestManifestsAgree(t *testing.T) {
	t.Parallel()
	m := load(t)
	d := m.deployment.Spec
	podLabels := d.Template.Metadata.Labels
	if d.Replicas != 3 {
		t.Errorf("Deployment replicas = %d; want 3", d.Replicas)
	}
	if !subset(d.Selector.MatchLabels, podLabels) {
		t.Errorf("Deployment selector %v does not match its pod labels %v", d.Selector.MatchLabels, podLabels)
	}
	if !subset(m.service.Spec.Selector, podLabels) {
		t.Errorf("Service selector %v does not match the pod labels %v", m.service.Spec.Selector, podLabels)
	}
	if !subset(m.pdb.Spec.Selector.MatchLabels, podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not match the pod labels %v", m.pdb.Spec.Selector.MatchLabels, podLabels)
	}
	if mu := m.pdb.Spec.MinAvailable; mu < 1 || mu >= d.Replicas {
		t.Errorf("PodDisruptionBudget minAvailable = %d; want between 1 and replicas-1", mu)
	}
	if len(d.Template.Spec.Containers) != 1 {
		t.Fatalf("%d containers; want 1", len(d.Template.Spec.Containers))
	}
	c := d.Template.Spec.Containers[0]
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	addr := flagValue(c.Args, "--addr")
	if want := ":" + strconv.Itoa(ports["http"]); addr != want {
		t.Errorf("--addr = %q; want %q (the http container port)", addr, want)
	}
	for _, p := range m.service.Spec.Ports {
		if _, ok := ports[fmt.Sprint(p.TargetPort)]; !ok {
			t.Errorf("Service targetPort %v names no container port", p.TargetPort)
		}
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe = %+v; want httpGet /readyz", p)
	}
	if p := c.LivenessProbe; p == nil || p.GRPC == nil || p.GRPC.Port != ports["http"] {
		t.Errorf("liveness probe = %+v; want grpc on port %d", p, ports["http"])
	}

	// GOMEMLIMIT stays below the memory limit.
	limit := bytesOf(t, c.Resources.Limits["memory"])
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			if soft := bytesOf(t, e.Value); soft >= limit || soft < limit*3/4 {
				t.Errorf("GOMEMLIMIT %s: want 75%%-100%% of the memory limit %s", e.Value, c.Resources.Limits["memory"])
			}
			limit = 0
		}
	}
	if limit != 0 {
		t.Error("no GOMEMLIMIT below the memory limit")
	}

	// Every Secret reference names a key of the example Secret.
	keys := m.secret.StringData
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name != m.secret.Metadata.Name || keys[ref.Key] == "" {
			t.Errorf("env %s refers to Secret %s key %s, which secret.example.yaml lacks", e.Name, ref.Name, ref.Key)
		}
	}
	// Every --*-file flag points at a file of a mounted Secret volume.
	files := map[string]bool{}
	for _, v := range d.Template.Spec.Volumes {
		if v.Secret == nil {
			continue
		}
		if v.Secret.SecretName != m.secret.Metadata.Name {
			t.Errorf("volume %s mounts Secret %s; want %s", v.Name, v.Secret.SecretName, m.secret.Metadata.Name)
		}
		for _, mnt := range c.VolumeMounts {
			if mnt.Name != v.Name {
				continue
			}
			for _, item := range v.Secret.Items {
				if keys[item.Key] == "" {
					t.Errorf("volume %s item %s: secret.example.yaml has no such key", v.Name, item.Key)
				}
				files[filepath.Join(mnt.MountPath, item.Path)] = true
			}
		}
	}
	for _, flag := range []string{"--secret-key-file", "--admin-token-file"} {
		if f := flagValue(c.Args, flag); !files[f] {
			t.Errorf("%s=%s is not a file of a mounted Secret (have %v)", flag, f, files)
		}
	}
}

// bytesOf parses a quantity such as 1Gi (Kubernetes) or 900MiB (Go).
func bytesOf(t *testing.T, q string) int64 {
	t.Helper()
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"Gi", 1 << 30}, {"Mi", 1 << 20}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(q, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil {
				t.Fatalf("quantity %q: %v", q, err)
			}
			return n * u.mult
		}
	}
	t.Fatalf("quantity %q: want a Mi, Gi, MiB or GiB suffix", q)
	return 0
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestContainerStarts runs the binary with the container's arguments and a
// Secret laid out as the Deployment mounts it, on a real PostgreSQL, and
// checks what the probes check.
func TestContainerStarts(t *testing.T) {
	t.Parallel()
	base := os.Getenv("TWILIOGUARD_TEST_POSTGRES_DSN")
	if base == "" {
		msg := "TWILIOGUARD_TEST_POSTGRES_DSN is not set: run scripts/test.sh, which installs PostgreSQL (apt-get install postgresql)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	m := load(t)
	c := m.deployment.Spec.Template.Spec.Containers[0]

	// The Secret's files, where the Deployment mounts them, moved under a
	// temporary root.
	root := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	adminToken := rand.Text()
	secretFiles := map[string]string{
		"secret-key":  base64.StdEncoding.EncodeToString(key) + "\n",
		"admin-token": adminToken + "\n",
	}
	addr := testserver.FreeAddr(t)
	var args []string
	for _, a := range c.Args {
		switch {
		case strings.HasPrefix(a, "--addr="):
			a = "--addr=" + addr
		case strings.HasPrefix(a, "--data-dir="):
			a = "--data-dir=" + filepath.Join(root, "data")
		case strings.HasPrefix(a, "--secret-key-file="), strings.HasPrefix(a, "--admin-token-file="):
			name, path, _ := strings.Cut(a, "=")
			path = filepath.Join(root, path)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(secretFiles[filepath.Base(path)]), 0o400); err != nil {
				t.Fatal(err)
			}
			a = name + "=" + path
		}
		args = append(args, a)
	}
	cmd := exec.Command(testserver.Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for _, e := range c.Env {
		switch {
		case e.Name == "TWILIOGUARD_STORE":
			cmd.Env = append(cmd.Env, "TWILIOGUARD_STORE="+pgtest.NewDatabase(t, base))
		case e.ValueFrom == nil:
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			_ = err // the exit status of an interrupted process says nothing
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done //nolint:errcheck // the exit status of a killed process says nothing
		}
	})

	// The startup and readiness probes.
	baseURL := "http://" + addr
	for _, path := range []string{c.StartupProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, err := get(t, baseURL+path)
			if err == nil && code == http.StatusOK {
				t.Logf("GET %s: %d %s", path, code, strings.TrimSpace(body))
				break
			}
			select {
			case err := <-done:
				t.Fatalf("twilioguard exited: %v\n%s", err, logs.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %q, %v after 30s\n%s", path, code, body, err, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The liveness probe: gRPC health over h2c, as the kubelet asks it.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health Check = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	// The admin token comes from the mounted file.
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		baseURL+"/twilioguard.v1.AccountService/ListAccounts", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("ListAccounts with the admin token file's token: HTTP %d %s", res.StatusCode, body)
	}
}

func get(t *testing.T, u string) (int, string, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}
