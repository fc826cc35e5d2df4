// Command kube-apiserver-lite is a Kubernetes API server for tests, in the spirit of controller-runtime's
// envtest: the real k8s.io/apiserver request machinery and apiextensions-apiserver (CRDs with schema
// validation, pruning, defaulting, CEL, status/scale subresources, server-side apply, watch cache) in
// one GenericAPIServer over etcd, plus a handful of built-in types. It has no controllers, no admission
// and no kubelet. Anyone may do anything: anonymous authentication, always-allow authorization.
//
// Flags follow kube-apiserver's names where they overlap (--etcd-servers, --secure-port,
// --bind-address, --cert-dir, --etcd-prefix), so a harness can drive either binary.
package main

import (
	"errors"
	goflag "flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"

	"github.com/spf13/pflag"
	noopoteltrace "go.opentelemetry.io/otel/trace/noop"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsv1beta1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1beta1"
	extensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	crdoptions "k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/authentication/request/anonymous"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericfilters "k8s.io/apiserver/pkg/server/filters"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	netutils "k8s.io/utils/net"

	generatedopenapi "db-refresher/envtest/apiserver/openapi"
)

type options struct {
	run       *genericoptions.ServerRunOptions
	etcd      *genericoptions.EtcdOptions
	serving   *genericoptions.SecureServingOptionsWithLoopback
	podLogDir string
}

func main() {
	o := &options{
		run:     genericoptions.NewServerRunOptions(),
		etcd:    genericoptions.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil)),
		serving: genericoptions.NewSecureServingOptions().WithLoopback(),
	}
	fs := pflag.NewFlagSet("kube-apiserver-lite", pflag.ExitOnError)
	o.run.AddUniversalFlags(fs)
	o.etcd.AddFlags(fs)
	o.serving.AddFlags(fs)
	fs.StringVar(&o.podLogDir, "pod-log-dir", "", "folder holding pod logs: GET pods/{name}/log serves <dir>/<namespace>/<name>.log")
	klogFlags := goflagSet()
	fs.AddGoFlagSet(klogFlags)
	_ = fs.Parse(os.Args[1:])

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "kube-apiserver-lite:", err)
		os.Exit(1)
	}
}

func run(o *options) error {
	if err := o.run.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.run.DefaultAdvertiseAddress(o.serving.SecureServingOptions); err != nil {
		return err
	}
	if err := o.run.Complete(); err != nil {
		return err
	}
	var errs []error
	errs = append(errs, o.run.Validate()...)
	errs = append(errs, o.etcd.Validate()...)
	errs = append(errs, o.serving.Validate()...)
	if err := errors.Join(errs...); err != nil {
		return err
	}

	scheme, codecs := extensionsapiserver.Scheme, extensionsapiserver.Codecs
	if err := registerBuiltins(scheme); err != nil {
		return err
	}

	if err := o.serving.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{netutils.ParseIPSloppy("127.0.0.1")}); err != nil {
		return fmt.Errorf("creating self-signed certificates: %w", err)
	}
	cfg := genericapiserver.NewRecommendedConfig(codecs)
	if err := o.run.ApplyTo(&cfg.Config); err != nil {
		return err
	}
	// The generic RESTOptionsGetter stores CRDs themselves; built-in types get their own codecs.
	o.etcd.StorageConfig.Codec = codecs.LegacyCodec(apiextensionsv1beta1.SchemeGroupVersion, apiextensionsv1.SchemeGroupVersion)
	if err := o.etcd.ApplyTo(&cfg.Config); err != nil {
		return err
	}
	if err := o.serving.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return err
	}
	cfg.Authentication.Authenticator = anonymous.NewAuthenticator(nil)
	cfg.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	// Without "log" here a followed pod log would be cut by the 60 s request timeout.
	cfg.LongRunningFunc = genericfilters.BasicLongRunningRequestCheck(sets.NewString("watch", "proxy"),
		sets.NewString("attach", "exec", "proxy", "log", "portforward"))
	cfg.MergedResourceConfig = extensionsapiserver.DefaultAPIResourceConfigSource()

	// Server-side apply on built-in types needs their OpenAPI models; build.sh generates them with
	// openapi-gen from the packaged k8s.io/api sources.
	namer := openapinamer.NewDefinitionNamer(scheme)
	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, namer)
	cfg.OpenAPIConfig.Info.Title = "kube-apiserver-lite"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, namer)
	cfg.OpenAPIV3Config.Info.Title = "kube-apiserver-lite"

	crdConfig := &extensionsapiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: extensionsapiserver.ExtraConfig{
			CRDRESTOptionsGetter: crdoptions.NewCRDRESTOptionsGetter(*o.etcd, cfg.ResourceTransformers, cfg.StorageObjectCountTracker),
			ServiceResolver:      noServices{},
			AuthResolverWrapper:  webhook.NewDefaultAuthenticationInfoResolverWrapper(nil, nil, cfg.LoopbackClientConfig, noopoteltrace.NewTracerProvider()),
		},
	}
	completed := crdConfig.Complete()
	// apiextensions-apiserver turns discovery off because in kube-apiserver another server in the chain
	// serves /apis; here this is the only server.
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	s := server.GenericAPIServer
	if err := installBuiltins(s, scheme, codecs, *o.etcd, o.podLogDir); err != nil {
		return err
	}
	listCRDGroups(s, server.Informers.Apiextensions().V1().CustomResourceDefinitions().Informer())

	ctx := genericapiserver.SetupSignalContext()
	return s.PrepareRun().RunWithContext(ctx)
}

// listCRDGroups adds CRD groups to the unaggregated /apis list. apiextensions-apiserver only feeds the
// aggregated discovery document (which kubectl reads first); in kube-apiserver the aggregator lists CRD
// groups in the plain document, and clients that do not ask for aggregated discovery read that one.
func listCRDGroups(s *genericapiserver.GenericAPIServer, informer cache.SharedIndexInformer) {
	var mu sync.Mutex
	listed := sets.New[string]()
	resync := func() {
		mu.Lock()
		defer mu.Unlock()
		versions := map[string]sets.Set[string]{}
		for _, obj := range informer.GetStore().List() {
			crd := obj.(*apiextensionsv1.CustomResourceDefinition)
			if !established(crd) {
				continue
			}
			for _, v := range crd.Spec.Versions {
				if v.Served {
					if versions[crd.Spec.Group] == nil {
						versions[crd.Spec.Group] = sets.New[string]()
					}
					versions[crd.Spec.Group].Insert(v.Name)
				}
			}
		}
		for group, vs := range versions {
			names := vs.UnsortedList()
			sort.Slice(names, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(names[i], names[j]) > 0 })
			g := metav1.APIGroup{Name: group}
			for _, v := range names {
				g.Versions = append(g.Versions, metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + v, Version: v})
			}
			g.PreferredVersion = g.Versions[0]
			s.DiscoveryGroupManager.AddGroup(g)
			listed.Insert(group)
		}
		for group := range listed {
			if _, ok := versions[group]; !ok {
				s.DiscoveryGroupManager.RemoveGroup(group)
				listed.Delete(group)
			}
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { resync() },
		UpdateFunc: func(any, any) { resync() },
		DeleteFunc: func(any) { resync() },
	})
	if err != nil {
		klog.Errorf("CRD groups will be missing from /apis: %v", err)
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// noServices: conversion webhooks would need Service lookups; a test server has no backends to call.
type noServices struct{}

func (noServices) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	return nil, fmt.Errorf("conversion webhooks are not supported (service %s/%s:%d)", namespace, name, port)
}

func goflagSet() *goflag.FlagSet {
	gfs := goflag.NewFlagSet("klog", goflag.ExitOnError)
	klog.InitFlags(gfs)
	return gfs
}
