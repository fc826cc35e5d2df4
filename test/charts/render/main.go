// chart-render: renders the charts in charts/ the way `helm template` does, for tests on a machine
// without helm, and decodes every rendered document strictly into its Kubernetes type.
//
//	chart-render render --chart DIR [-f values.yaml]... [--name RELEASE] [--namespace NS] [--kube-version v1.36.4]
//	    prints JSON: {"values": <computed values>, "manifests": [...], "notes": "...", "warnings": [...]}
//	    fails (exit 1, "Error: ..." on stderr, as helm) on a template or values-schema error
//	chart-render rbac-check < {"namespaced": [...], "cluster": [...], "requests": [...]}
//	    prints JSON: one authorization decision per request
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

// The API versions a 1.36 cluster serves by default, for .Capabilities.APIVersions.Has.
var defaultAPIVersions = VersionSet{
	"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "policy/v1", "networking.k8s.io/v1",
	"coordination.k8s.io/v1", "events.k8s.io/v1", "autoscaling/v2", "apiextensions.k8s.io/v1",
	"apps/v1/Deployment", "v1/Service", "v1/ConfigMap", "v1/ServiceAccount", "v1/Secret",
	"rbac.authorization.k8s.io/v1/Role", "rbac.authorization.k8s.io/v1/RoleBinding",
	"rbac.authorization.k8s.io/v1/ClusterRole", "rbac.authorization.k8s.io/v1/ClusterRoleBinding",
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: chart-render render|rbac-check ...")
	}
	switch os.Args[1] {
	case "render":
		renderCmd(os.Args[2:])
	case "rbac-check":
		var in RBACInput
		dec := json.NewDecoder(os.Stdin)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			fail("rbac-check input: %v", err)
		}
		out, err := rbacCheck(in)
		if err != nil {
			fail("%v", err)
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
	default:
		fail("unknown command %q", os.Args[1])
	}
}

func renderCmd(args []string) {
	fs := flag.NewFlagSet("render", flag.ExitOnError)
	chartDir := fs.String("chart", "", "chart directory")
	name := fs.String("name", "release-name", "release name (helm template's default is release-name)")
	namespace := fs.String("namespace", "default", "release namespace")
	kubeVersion := fs.String("kube-version", "v1.36.4", "Kubernetes version for .Capabilities")
	apiVersions := fs.String("api-versions", "", "extra API versions for .Capabilities.APIVersions, comma-separated")
	var files valueFiles
	fs.Var(&files, "f", "values file (repeatable; later files win)")
	fs.Var(&files, "values", "values file (repeatable; later files win)")
	_ = fs.Parse(args)
	if *chartDir == "" {
		fail("--chart is required")
	}
	chart, err := loadChart(*chartDir)
	if err != nil {
		fail("%v", err)
	}
	user := map[string]any{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			fail("%v", err)
		}
		m, err := readValues(raw)
		if err != nil {
			fail("failed to parse %s: %v", f, err)
		}
		user = mergeMaps(user, m)
	}
	warnings := []string{}
	values := coalesceValues(chart.Values, user, func(w string) { warnings = append(warnings, w) })
	if err := validateSchema(values, chart.Schema); err != nil {
		fail("%v", err)
	}
	var major, minor string
	if parts := strings.SplitN(strings.TrimPrefix(*kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	apis := append(VersionSet{}, defaultAPIVersions...)
	for _, a := range strings.Split(*apiVersions, ",") {
		if a != "" {
			apis = append(apis, a)
		}
	}
	caps := Capabilities{KubeVersion: KubeVersion{Version: *kubeVersion, Major: major, Minor: minor}, APIVersions: apis}
	rendered, notes, err := render(chart, values, Release{Name: *name, Namespace: *namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		fail("%v", err)
	}
	manifests := []Manifest{}
	for _, r := range rendered {
		for i, doc := range splitManifests(r.Text) {
			m, err := decodeManifest(r.Template, i, doc)
			if err != nil {
				fail("%v", err)
			}
			manifests = append(manifests, m)
		}
	}
	out := map[string]any{"values": values, "manifests": manifests, "notes": notes, "warnings": warnings}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
