package main

// The subset of Helm's template engine (helm.sh/helm/v3/pkg/engine) that the charts in charts/ use,
// rebuilt on the same foundations Helm uses: Go's text/template, sprig's TxtFuncMap (without env and
// expandenv, as Helm removes them) and sigs.k8s.io/yaml. What Helm adds on top is copied in behaviour:
// include (with the same recursion limit), tpl, required, toYaml/fromYaml/toJson/fromJson and their
// must* forms, lookup (which answers an empty map when not talking to a cluster, as `helm template`
// does), missingkey=zero plus the "<no value>" clean-up, partials (files starting with "_") that are
// parsed but not rendered, and Helm's error format "execution error at (<template>:<line>:<col>): ...".

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"
)

// Helm's chart.Metadata: templates see these field names (.Chart.Name, .Chart.AppVersion, ...).
type ChartMetadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []map[string]any  `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []map[string]any  `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// Helm's chartutil.KubeVersion and VersionSet.
type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv *KubeVersion) String() string     { return kv.Version }
func (kv *KubeVersion) GitVersion() string { return kv.Version }

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
}

type Chart struct {
	Dir       string
	Metadata  ChartMetadata
	Values    map[string]any
	Schema    []byte
	Templates map[string]string // "<chart name>/templates/<file>" -> text
}

func loadChart(dir string) (*Chart, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a chart: %w", dir, err)
	}
	c := &Chart{Dir: dir, Templates: map[string]string{}}
	if err := yaml.UnmarshalStrict(raw, &c.Metadata); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	if c.Metadata.APIVersion != "v2" {
		return nil, fmt.Errorf("Chart.yaml: apiVersion must be v2 (Helm 3), got %q", c.Metadata.APIVersion)
	}
	if c.Metadata.Name == "" || c.Metadata.Version == "" {
		return nil, fmt.Errorf("Chart.yaml: name and version are required")
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "charts")); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s/charts: subcharts are not supported by this renderer", dir)
	}
	c.Values = map[string]any{}
	if raw, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if c.Values, err = readValues(raw); err != nil {
			return nil, fmt.Errorf("values.yaml: %w", err)
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		c.Schema = raw
	}
	tdir := filepath.Join(dir, "templates")
	err = filepath.WalkDir(tdir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		text, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		c.Templates[path.Join(c.Metadata.Name, filepath.ToSlash(rel))] = string(text)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// readValues parses a values file as Helm does: YAML through sigs.k8s.io/yaml (so numbers are
// float64, as Helm's templates see them); an empty file is an empty map.
func readValues(raw []byte) (map[string]any, error) {
	out := map[string]any{}
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

const recursionMaxNums = 1000

func toYAML(v any) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v any) (string, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYAML(str string) map[string]any {
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []any {
	a := []any{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []any{err.Error()}
	}
	return a
}

func toJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func fromJSON(str string) map[string]any {
	m := make(map[string]any)
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []any {
	a := []any{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []any{err.Error()}
	}
	return a
}

func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		// Replaced per render below, as in Helm.
		"include":  func(string, any) string { return "not implemented" },
		"tpl":      func(string, any) any { return "not implemented" },
		"required": func(string, any) (any, error) { return "not implemented", nil },
		// `helm template` and `helm install --dry-run` without a cluster: lookup finds nothing.
		"lookup": func(string, string, string, string) (map[string]any, error) { return map[string]any{}, nil },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func includeFun(t *template.Template, includedNames map[string]int) func(string, any) (string, error) {
	return func(name string, data any) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
}

func tplFun(parent *template.Template, includedNames map[string]int) func(string, any) (string, error) {
	return func(tpl string, vals any) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{"include": includeFun(t, includedNames), "tpl": tplFun(t, includedNames)})
		t, err = t.New(parent.Name()).Parse(tpl)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", tpl, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", tpl, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

func required(warn string, val any) (any, error) {
	if val == nil {
		return val, fmt.Errorf("%s", warn)
	} else if s, ok := val.(string); ok && s == "" {
		return val, fmt.Errorf("%s", warn)
	}
	return val, nil
}

var execErrorChain = regexp.MustCompile(`^executing "[^"]*" at <[^>]*>: `)

// Helm's reformatExecErrorMsg: "execution error at (<file>:<line>:<col>): <innermost message>".
func reformatExecError(filename string, err error) error {
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", filename, err)
	}
	location, msg := tokens[1], tokens[2]
	for {
		stripped := execErrorChain.ReplaceAllString(msg, "")
		if i := strings.Index(stripped, "error calling "); i == 0 {
			if j := strings.Index(stripped, ": "); j > 0 {
				stripped = stripped[j+2:]
			}
		}
		if stripped == msg {
			break
		}
		msg = stripped
		// A nested include's own "template: <file>:<line>:<col>: executing ..." prefix.
		if t := strings.SplitN(msg, ": ", 3); len(t) == 3 && t[0] == "template" {
			location, msg = t[1], t[2]
		}
	}
	return fmt.Errorf("execution error at (%s): %s", location, msg)
}

type Release struct {
	Name      string
	Namespace string
	Revision  int
	IsInstall bool
	IsUpgrade bool
}

type Rendered struct {
	Template string `json:"template"`
	Text     string `json:"text"`
}

// render executes every non-partial template, in Helm's order, and returns their output.
func render(c *Chart, values map[string]any, rel Release, caps Capabilities) ([]Rendered, string, error) {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	includedNames := map[string]int{}
	funcs := funcMap()
	funcs["include"] = includeFun(t, includedNames)
	funcs["tpl"] = tplFun(t, includedNames)
	funcs["required"] = required
	t.Funcs(funcs)

	names := make([]string, 0, len(c.Templates))
	for name := range c.Templates {
		names = append(names, name)
	}
	// Helm's sortTemplates: deepest paths first, then reverse lexical order, so that a chart's own
	// definitions override those of its subcharts.
	sort.Slice(names, func(i, j int) bool {
		a, b := strings.Count(names[i], "/"), strings.Count(names[j], "/")
		if a != b {
			return a > b
		}
		return names[i] > names[j]
	})
	for _, name := range names {
		if _, err := t.New(name).Parse(c.Templates[name]); err != nil {
			return nil, "", fmt.Errorf("parse error at (%s): %s", name, strings.TrimPrefix(err.Error(), "template: "))
		}
	}
	top := map[string]any{
		"Chart":        &c.Metadata,
		"Capabilities": &caps,
		"Release": map[string]any{
			"Name":      rel.Name,
			"Namespace": rel.Namespace,
			"Revision":  rel.Revision,
			"Service":   "Helm",
			"IsInstall": rel.IsInstall,
			"IsUpgrade": rel.IsUpgrade,
		},
		"Values": values,
	}
	var out []Rendered
	notes := ""
	sort.Strings(names)
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		vals := map[string]any{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]any{"Name": name, "BasePath": path.Join(c.Metadata.Name, "templates")}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, "", reformatExecError(name, err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.HasSuffix(name, "NOTES.txt") {
			notes = text
			continue
		}
		out = append(out, Rendered{Template: name, Text: text})
	}
	return out, notes, nil
}

var manifestSep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

// splitManifests is Helm's releaseutil.SplitManifests: documents in order, empty ones dropped.
func splitManifests(text string) []string {
	var docs []string
	for _, d := range manifestSep.Split(strings.TrimSpace(text), -1) {
		if d == "" {
			continue
		}
		docs = append(docs, strings.TrimSpace(d))
	}
	return docs
}
