package main

// Strict decoding of rendered documents into their Kubernetes Go types (k8s.io/api, as Debian packages
// it), with the serializer kube-apiserver decodes request bodies with. Strict mode fails on unknown
// fields, duplicate fields and wrong types: what `fieldValidation=Strict` answers with a 400, and what
// Helm's own OpenAPI validation refuses at install time. Kinds not registered here (CRDs such as CNPG's
// Cluster or a ServiceMonitor) are reported as "unregistered" for the caller to check elsewhere.

import (
	"errors"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

var scheme = runtime.NewScheme()

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, batchv1.AddToScheme, coordinationv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
}

var strictYAML = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})

type Manifest struct {
	Template   string         `json:"template"`
	Index      int            `json:"index"`
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Name       string         `json:"name"`
	Namespace  string         `json:"namespace,omitempty"`
	Object     map[string]any `json:"object"`
	YAML       string         `json:"yaml"`
	// "strict": decoded strictly into its Go type without error; "unregistered": not a k8s.io/api type.
	Decode      string `json:"decode"`
	DecodeError string `json:"decodeError,omitempty"`
}

func decodeManifest(template string, index int, doc string) (Manifest, error) {
	m := Manifest{Template: template, Index: index, YAML: doc}
	obj := map[string]any{}
	// Like Helm, a document must parse as YAML; duplicate keys are refused here as kubectl and the
	// strict decoder do.
	if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
		return m, errors.New("YAML parse error on " + template + ": " + err.Error())
	}
	m.Object = obj
	m.APIVersion, _ = obj["apiVersion"].(string)
	m.Kind, _ = obj["kind"].(string)
	if md, ok := obj["metadata"].(map[string]any); ok {
		m.Name, _ = md["name"].(string)
		m.Namespace, _ = md["namespace"].(string)
	}
	if m.Kind == "" || m.APIVersion == "" {
		return m, errors.New(template + ": a document has no apiVersion or kind")
	}
	_, _, err := strictYAML.Decode([]byte(doc), nil, nil)
	switch {
	case err == nil:
		m.Decode = "strict"
	case runtime.IsNotRegisteredError(err):
		m.Decode = "unregistered"
	default:
		m.Decode = "failed"
		m.DecodeError = err.Error()
	}
	return m, nil
}
