package deploytest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/s3dest/s3dest/pkg/platform"
	"github.com/s3dest/s3dest/services/admin"
	"github.com/s3dest/s3dest/services/batcher"
	"github.com/s3dest/s3dest/services/copier"
	"github.com/s3dest/s3dest/services/ingest"
	"github.com/s3dest/s3dest/services/stager"
	"github.com/s3dest/s3dest/services/validator"
)

var chartDir = filepath.Join(repoRoot, "deploy", "helm", "s3dest")

// configOf is the config each service binary binds, by the binary's path in the image.
func configOf(binary string) (interface{ Validate() error }, bool) {
	switch binary {
	case "/bin/ingest":
		return &ingest.Config{}, true
	case "/bin/batcher":
		return &batcher.Config{}, true
	case "/bin/stager":
		return &stager.Config{}, true
	case "/bin/copier":
		return &copier.Config{}, true
	case "/bin/validator":
		return &validator.Config{}, true
	case "/bin/admin":
		return &admin.Config{}, true
	}
	return nil, false
}

// secretKeysOf is what each service may read of the chart's Secret, and so all it may mount.
var secretKeysOf = map[string][]string{
	"ingest": nil, "batcher": {"redis-url"}, "stager": nil, "copier": {"credentials-key", "redis-url"},
	"validator": {"validator-token"}, "admin": {"admin-token", "redis-url", "validator-token"},
}

// rendered is a chart's output decoded into k8s.io/api types.
type rendered struct {
	deployments  []appsv1.Deployment
	statefulSets []appsv1.StatefulSet
	services     []corev1.Service
	secrets      map[string]corev1.Secret
	policies     []networkingv1.NetworkPolicy
	kinds        map[string]int
}

// newObject is the typed object of each kind the chart may render; any other kind fails the test.
var newObject = map[string]func() any{
	"Deployment": func() any { return &appsv1.Deployment{} }, "StatefulSet": func() any { return &appsv1.StatefulSet{} },
	"Service": func() any { return &corev1.Service{} }, "ServiceAccount": func() any { return &corev1.ServiceAccount{} },
	"Secret": func() any { return &corev1.Secret{} }, "ConfigMap": func() any { return &corev1.ConfigMap{} },
	"PodDisruptionBudget":     func() any { return &policyv1.PodDisruptionBudget{} },
	"HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"NetworkPolicy":           func() any { return &networkingv1.NetworkPolicy{} },
	"Pod":                     func() any { return &corev1.Pod{} },
}

// render lints the chart and renders it as release "s3dest" in namespace "s3dest" with the chart's
// values and the values files given, then decodes every object strictly: an unknown field fails.
func render(t *testing.T, valuesFiles ...string) rendered {
	t.Helper()
	vals := map[string]any{}
	for _, f := range valuesFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.CoalesceTables(v.AsMap(), vals)
	}
	lint := action.NewLint()
	lint.Strict = true
	res := lint.Run([]string{chartDir}, vals)
	for _, m := range res.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
	for _, err := range res.Errors {
		t.Errorf("helm lint: %v", err)
	}
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName, install.Namespace = "s3dest", "s3dest"
	install.DisableHooks = true
	rel, err := install.Run(chrt, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	out := rendered{secrets: map[string]corev1.Secret{}, kinds: map[string]int{}}
	for _, doc := range strings.Split(rel.Manifest, "\n---") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		var meta struct{ Kind string }
		_ = json.Unmarshal(js, &meta)
		mk, ok := newObject[meta.Kind]
		if !ok {
			t.Fatalf("the chart renders a %q, which this test does not know", meta.Kind)
		}
		obj := mk()
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", meta.Kind, err, doc)
		}
		out.kinds[meta.Kind]++
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out.deployments = append(out.deployments, *o)
		case *appsv1.StatefulSet:
			out.statefulSets = append(out.statefulSets, *o)
		case *corev1.Service:
			out.services = append(out.services, *o)
		case *corev1.Secret:
			out.secrets[o.Name] = *o
		case *networkingv1.NetworkPolicy:
			out.policies = append(out.policies, *o)
		}
	}
	return out
}

// productionSecret is what the README's commands create for values-production.yaml's existingSecret.
func productionSecret() corev1.Secret {
	return corev1.Secret{StringData: map[string]string{
		"admin-token": "q4Jp0n0bX3t2s9m4k8ZC2yE+Qb7d1Vw2rNnHcIh3f8Y=", "validator-token": "Zr1bQd4s6Q0y7l2mXk1eP9cV3uT8nW5aF0hJ2gK4oLs=",
		"credentials-key": "m6Vv2o0XqGf0mB0k3Z8l5n7p9r1t3v5x7z9B1D3F5H8=",
		"redis-url":       "rediss://:redis-password@master.acme-s3dest.abc123.usw2.cache.amazonaws.com:6379/0",
		"nats-creds":      "-----BEGIN NATS USER JWT-----\n…\n------END NATS USER JWT------",
	}}
}

func TestTheChartRendersWhatTheServicesAccept(t *testing.T) {
	for _, c := range []struct {
		name   string
		values []string
	}{
		{"default values", nil},
		{"production values", []string{filepath.Join(chartDir, "values-production.yaml")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "S3DEST_") {
					t.Setenv(k, "") // the services' Bind must see the chart's flags alone
					os.Unsetenv(k)
				}
			}
			r := render(t, c.values...)
			var kinds []string
			for k, n := range r.kinds {
				kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
			}
			sort.Strings(kinds)
			t.Logf("rendered: %s", strings.Join(kinds, ", "))
			secret, ok := r.secrets["s3dest"]
			if !ok {
				secret = productionSecret()
			}
			checkServices(t, r, secret)
			checkNetworkPolicies(t, r)
		})
	}
}

// checkServices runs every s3dest container's arguments through its binary's own flag set and Validate,
// with the chart's Secret as the mounted files, and checks the Secret's items, the probes, the security
// context and every address dialled.
func checkServices(t *testing.T, r rendered, secret corev1.Secret) {
	t.Helper()
	data := func(key string) (string, bool) {
		if v, ok := secret.StringData[key]; ok {
			return v, true
		}
		v, ok := secret.Data[key]
		return string(v), ok
	}
	seen := map[string]bool{}
	for _, d := range r.deployments {
		component := d.Spec.Template.Labels["app.kubernetes.io/component"]
		seen[component] = true
		pod := d.Spec.Template.Spec
		if len(pod.Containers) != 1 {
			t.Fatalf("%s: want one container, got %d", d.Name, len(pod.Containers))
		}
		ctr := pod.Containers[0]
		if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: the pod does not run as nonroot", d.Name)
		}
		if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: the root filesystem is writable", d.Name)
		}
		if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no CPU request or memory limit", d.Name)
		}
		for probe, p := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
			want := map[string]string{"readiness": "/readyz", "liveness": "/livez"}[probe]
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port.String() != "ops" {
				t.Errorf("%s: the %s probe is not GET %s on the ops port", d.Name, probe, want)
			}
		}

		// The Secret's items this pod mounts, written where the flags will read them.
		dir := t.TempDir()
		var mounted []string
		mountPath := map[string]string{}
		for _, m := range ctr.VolumeMounts {
			mountPath[m.Name] = m.MountPath
		}
		files := map[string]string{}
		for _, v := range pod.Volumes {
			if v.Secret == nil || v.Name != "secrets" {
				continue
			}
			for _, it := range v.Secret.Items {
				value, ok := data(it.Key)
				if !ok {
					t.Errorf("%s mounts %s, which the Secret lacks", d.Name, it.Key)
				}
				if it.Key != "nats-creds" {
					mounted = append(mounted, it.Key)
				}
				local := filepath.Join(dir, it.Path)
				if err := os.WriteFile(local, []byte(value), 0o600); err != nil {
					t.Fatal(err)
				}
				files[filepath.Join(mountPath[v.Name], it.Path)] = local
			}
		}
		slices.Sort(mounted)
		if want := secretKeysOf[component]; !slices.Equal(mounted, want) {
			t.Errorf("%s mounts the secrets %v, want exactly %v", d.Name, mounted, want)
		}

		cfg, ok := configOf(ctr.Command[0])
		if !ok || len(ctr.Command) != 1 {
			t.Fatalf("%s runs %v, not one of the service binaries", d.Name, ctr.Command)
		}
		settings, err := platform.Settings(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ctr.Env {
			if !slices.ContainsFunc(settings, func(s platform.Setting) bool { return s.Env == e.Name || s.Env+"_FILE" == e.Name }) {
				t.Errorf("%s: %s accepts no variable %s", d.Name, ctr.Command[0], e.Name)
			}
		}
		args := slices.Clone(ctr.Args)
		for i, a := range args {
			if name, path, ok := strings.Cut(a, "="); ok && files[path] != "" {
				args[i] = name + "=" + files[path]
			}
		}
		var out bytes.Buffer
		fs := flag.NewFlagSet(ctr.Command[0], flag.ContinueOnError)
		fs.SetOutput(&out)
		if err := platform.Bind(fs, cfg); err != nil {
			t.Fatal(err)
		}
		if err := fs.Parse(args); err != nil {
			t.Errorf("%s: %s refuses its arguments %q: %v", d.Name, ctr.Command[0], ctr.Args, err)
			continue
		}
		if fs.NArg() > 0 || out.Len() > 0 {
			t.Errorf("%s: stray arguments %q or warnings %q", d.Name, fs.Args(), out.String())
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %s rejects the chart's configuration: %v", d.Name, ctr.Command[0], err)
		}
		for _, name := range []string{"nats-url", "redis-url", "validator-addr"} {
			f := fs.Lookup(name)
			if f == nil || f.Value.String() == "" {
				continue
			}
			for _, addr := range strings.Split(f.Value.String(), ",") {
				checkDialled(t, r, d.Name, name, addr)
			}
		}
	}
	for component := range secretKeysOf {
		if !seen[component] {
			t.Errorf("no Deployment of %s", component)
		}
	}
}

// checkDialled proves an address a service dials is a Service of the chart with that port, unless its host
// is outside the cluster (a name with dots that is not a .svc name).
func checkDialled(t *testing.T, r rendered, who, setting, addr string) {
	t.Helper()
	hostport := addr
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Errorf("%s: --%s %q has no host:port", who, setting, addr)
		return
	}
	if strings.Contains(host, ".") && !strings.Contains(host, ".svc") {
		return
	}
	name := strings.Split(host, ".")[0]
	for _, s := range r.services {
		if s.Name != name {
			continue
		}
		for _, p := range s.Spec.Ports {
			if fmt.Sprint(p.Port) == port {
				return
			}
		}
		t.Errorf("%s: --%s dials %s, but Service %s has no port %s", who, setting, addr, name, port)
		return
	}
	t.Errorf("%s: --%s dials %s, which is no Service of the chart", who, setting, addr)
}

// checkNetworkPolicies proves the validator's gRPC port admits admin alone.
func checkNetworkPolicies(t *testing.T, r rendered) {
	t.Helper()
	for _, p := range r.policies {
		if p.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] != "validator" {
			continue
		}
		for _, rule := range p.Spec.Ingress {
			grpc := slices.ContainsFunc(rule.Ports, func(pp networkingv1.NetworkPolicyPort) bool { return pp.Port.IntValue() == 7001 })
			if !grpc {
				continue
			}
			if len(rule.From) != 1 || rule.From[0].PodSelector == nil || rule.From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "admin" {
				t.Errorf("the validator's gRPC port admits %+v, want admin alone", rule.From)
			}
		}
		return
	}
	t.Error("no NetworkPolicy guards the validator")
}
