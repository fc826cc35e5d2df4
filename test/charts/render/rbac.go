package main

// rbac-check: would these Roles and ClusterRoles allow these HTTP requests? Each request is turned into
// authorization attributes by kube-apiserver's own RequestInfoFactory (verb from method and query,
// namespace, resource, subresource, name, including the rule that a request for Namespace X counts as
// namespaced in X), then checked with Covers from k8s.io/component-helpers, the comparison the RBAC
// escalation check uses. Role rules apply to requests in the Role's namespace only.

import (
	"net/http"
	"net/url"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/component-helpers/auth/rbac/validation"
)

type RBACInput struct {
	// Rules granted in one namespace (Role + RoleBinding, or a ClusterRole bound by a RoleBinding).
	Namespaced []struct {
		Namespace string              `json:"namespace"`
		Rules     []rbacv1.PolicyRule `json:"rules"`
	} `json:"namespaced"`
	// Rules granted everywhere (ClusterRole + ClusterRoleBinding).
	Cluster  []rbacv1.PolicyRule `json:"cluster"`
	Requests []struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"requests"`
}

type RBACDecision struct {
	Method          string `json:"method"`
	URL             string `json:"url"`
	ResourceRequest bool   `json:"resourceRequest"`
	Verb            string `json:"verb"`
	APIGroup        string `json:"apiGroup"`
	Resource        string `json:"resource"`
	Subresource     string `json:"subresource,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	Name            string `json:"name,omitempty"`
	Allowed         bool   `json:"allowed"`
}

var requestInfoFactory = &request.RequestInfoFactory{
	APIPrefixes:          sets.NewString("api", "apis"),
	GrouplessAPIPrefixes: sets.NewString("api"),
}

func rbacCheck(in RBACInput) ([]RBACDecision, error) {
	out := []RBACDecision{}
	for _, r := range in.Requests {
		u, err := url.Parse(r.URL)
		if err != nil {
			return nil, err
		}
		info, err := requestInfoFactory.NewRequestInfo(&http.Request{Method: r.Method, URL: u})
		if err != nil {
			return nil, err
		}
		d := RBACDecision{
			Method: r.Method, URL: r.URL, ResourceRequest: info.IsResourceRequest, Verb: info.Verb, APIGroup: info.APIGroup,
			Resource: info.Resource, Subresource: info.Subresource, Namespace: info.Namespace, Name: info.Name,
		}
		var wanted rbacv1.PolicyRule
		if info.IsResourceRequest {
			resource := info.Resource
			if info.Subresource != "" {
				resource += "/" + info.Subresource
			}
			wanted = rbacv1.PolicyRule{Verbs: []string{info.Verb}, APIGroups: []string{info.APIGroup}, Resources: []string{resource}}
			if info.Name != "" {
				wanted.ResourceNames = []string{info.Name}
			}
		} else {
			wanted = rbacv1.PolicyRule{Verbs: []string{info.Verb}, NonResourceURLs: []string{info.Path}}
		}
		rules := append([]rbacv1.PolicyRule{}, in.Cluster...)
		if info.Namespace != "" {
			for _, n := range in.Namespaced {
				if n.Namespace == info.Namespace {
					rules = append(rules, n.Rules...)
				}
			}
		}
		d.Allowed, _ = validation.Covers(rules, []rbacv1.PolicyRule{wanted})
		out = append(out, d)
	}
	return out, nil
}
