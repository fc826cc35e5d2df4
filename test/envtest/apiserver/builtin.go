package main

import (
	"context"
	"fmt"
	"reflect"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// builtin describes one built-in resource served from a generic etcd store. The v1 Go types are
// registered as their own internal version, so no conversion code is needed (kube-apiserver has
// separate internal types and generated conversions, which Debian does not package).
type builtin struct {
	gv         schema.GroupVersion
	plural     string
	kind       string
	namespaced bool
	shortNames []string
	newObj     func() runtime.Object
	newList    func() runtime.Object
	// status: the object has a /status subresource and the main endpoint ignores status changes.
	status bool
	// generation: metadata.generation counts changes of everything but metadata and status.
	generation bool
	nameFn     apivalidation.ValidateNameFunc
	// defaults fills what kube-apiserver's defaulting would; old is nil on create.
	defaults func(obj, old runtime.Object)
	// fields are the selectable fields beyond metadata.name/namespace (for ?fieldSelector=).
	fields func(obj runtime.Object) fields.Set
}

var (
	coreGV         = corev1.SchemeGroupVersion
	batchGV        = batchv1.SchemeGroupVersion
	coordinationGV = coordinationv1.SchemeGroupVersion
	eventsGV       = eventsv1.SchemeGroupVersion
)

func builtins() []builtin {
	sub, label, label1035 := apivalidation.NameIsDNSSubdomain, apivalidation.NameIsDNSLabel, apivalidation.NameIsDNS1035Label
	return []builtin{
		{gv: coreGV, plural: "namespaces", kind: "Namespace", shortNames: []string{"ns"}, status: true, nameFn: label,
			newObj: func() runtime.Object { return &corev1.Namespace{} }, newList: func() runtime.Object { return &corev1.NamespaceList{} },
			defaults: defaultNamespace},
		{gv: coreGV, plural: "secrets", kind: "Secret", namespaced: true, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.Secret{} }, newList: func() runtime.Object { return &corev1.SecretList{} },
			defaults: defaultSecret, fields: secretFields},
		{gv: coreGV, plural: "configmaps", kind: "ConfigMap", namespaced: true, shortNames: []string{"cm"}, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.ConfigMap{} }, newList: func() runtime.Object { return &corev1.ConfigMapList{} }},
		{gv: coreGV, plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true, shortNames: []string{"sa"}, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.ServiceAccount{} }, newList: func() runtime.Object { return &corev1.ServiceAccountList{} }},
		{gv: coreGV, plural: "services", kind: "Service", namespaced: true, shortNames: []string{"svc"}, status: true, nameFn: label1035,
			newObj: func() runtime.Object { return &corev1.Service{} }, newList: func() runtime.Object { return &corev1.ServiceList{} },
			defaults: defaultService},
		{gv: coreGV, plural: "events", kind: "Event", namespaced: true, shortNames: []string{"ev"}, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.Event{} }, newList: func() runtime.Object { return &corev1.EventList{} },
			fields: eventFields},
		{gv: coreGV, plural: "pods", kind: "Pod", namespaced: true, shortNames: []string{"po"}, status: true, generation: true, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.Pod{} }, newList: func() runtime.Object { return &corev1.PodList{} },
			defaults: defaultPod, fields: podFields},
		{gv: coreGV, plural: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true, shortNames: []string{"pvc"}, status: true, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.PersistentVolumeClaim{} }, newList: func() runtime.Object { return &corev1.PersistentVolumeClaimList{} },
			defaults: defaultPVC},
		// Stored and served only: no quota controller fills status.used and no admission enforces it; a
		// test writes status (through /status) the way the quota controller would.
		{gv: coreGV, plural: "resourcequotas", kind: "ResourceQuota", namespaced: true, shortNames: []string{"quota"}, status: true, nameFn: sub,
			newObj: func() runtime.Object { return &corev1.ResourceQuota{} }, newList: func() runtime.Object { return &corev1.ResourceQuotaList{} }},
		{gv: batchGV, plural: "jobs", kind: "Job", namespaced: true, status: true, generation: true, nameFn: sub,
			newObj: func() runtime.Object { return &batchv1.Job{} }, newList: func() runtime.Object { return &batchv1.JobList{} },
			defaults: defaultJob},
		{gv: coordinationGV, plural: "leases", kind: "Lease", namespaced: true, nameFn: sub,
			newObj: func() runtime.Object { return &coordinationv1.Lease{} }, newList: func() runtime.Object { return &coordinationv1.LeaseList{} }},
		// Stored apart from core/v1 events: kube-apiserver converts between the two through internal
		// types that are not packaged, so an events.k8s.io Event is not listed under /api/v1/events here.
		{gv: eventsGV, plural: "events", kind: "Event", namespaced: true, shortNames: []string{"ev"}, nameFn: sub,
			newObj: func() runtime.Object { return &eventsv1.Event{} }, newList: func() runtime.Object { return &eventsv1.EventList{} }},
	}
}

func registerBuiltins(scheme *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme, coordinationv1.AddToScheme, eventsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	for _, b := range builtins() {
		scheme.AddKnownTypes(schema.GroupVersion{Group: b.gv.Group, Version: runtime.APIVersionInternal}, b.newObj(), b.newList())
		if b.fields == nil {
			continue
		}
		// The list handler asks the scheme which field labels a kind supports before it filters.
		selectable := b.fields(b.newObj())
		if err := scheme.AddFieldLabelConversionFunc(b.gv.WithKind(b.kind), func(label, value string) (string, string, error) {
			if label == "metadata.name" || label == "metadata.namespace" || selectable.Has(label) {
				return label, value, nil
			}
			return "", "", fmt.Errorf("field label not supported: %s", label)
		}); err != nil {
			return err
		}
	}
	if err := registerPodLogOptions(scheme); err != nil {
		return err
	}
	for _, gv := range []schema.GroupVersion{coreGV, batchGV, coordinationGV, eventsGV} {
		if err := scheme.SetVersionPriority(gv); err != nil {
			return err
		}
	}
	return nil
}

// installBuiltins serves the core group at /api (kubectl discovers core resources only there) and the
// named groups under /apis.
func installBuiltins(s *genericapiserver.GenericAPIServer, scheme *runtime.Scheme, codecs serializer.CodecFactory, etcd genericoptions.EtcdOptions, podLogDir string) error {
	byGroup := map[string]map[string]rest.Storage{}
	var pods *genericregistry.Store
	for _, b := range builtins() {
		// Each group is stored in its own v1 encoding, like kube-apiserver's storage versions.
		storageCfg := etcd.StorageConfig
		storageCfg.Codec = codecs.LegacyCodec(b.gv)
		storageCfg.EncodeVersioner = b.gv
		optsGetter := etcd.CreateRESTOptionsGetter(&genericoptions.SimpleStorageFactory{StorageConfig: storageCfg}, nil)

		main, status, err := newStore(b, scheme, optsGetter)
		if err != nil {
			return fmt.Errorf("storage for %s: %w", b.plural, err)
		}
		if byGroup[b.gv.Group] == nil {
			byGroup[b.gv.Group] = map[string]rest.Storage{}
		}
		m := byGroup[b.gv.Group]
		m[b.plural] = &namedStore{Store: main, shortNames: b.shortNames}
		if status != nil {
			m[b.plural+"/status"] = status
		}
		if b.plural == "pods" {
			pods = main
		}
	}
	byGroup[""]["pods/log"] = &podLogREST{pods: pods, dir: podLogDir}

	paramCodec := runtime.NewParameterCodec(scheme)
	for _, gv := range []schema.GroupVersion{coreGV, batchGV, coordinationGV, eventsGV} {
		info := genericapiserver.NewDefaultAPIGroupInfo(gv.Group, scheme, paramCodec, codecs)
		info.VersionedResourcesStorageMap[gv.Version] = byGroup[gv.Group]
		var err error
		if gv.Group == "" {
			err = s.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, &info)
		} else {
			err = s.InstallAPIGroup(&info)
		}
		if err != nil {
			return fmt.Errorf("installing %s: %w", gv, err)
		}
	}
	return nil
}

func newStore(b builtin, scheme *runtime.Scheme, optsGetter generic.RESTOptionsGetter) (*genericregistry.Store, *statusREST, error) {
	st := strategy{ObjectTyper: scheme, NameGenerator: names.SimpleNameGenerator, b: b}
	gr := b.gv.WithResource(b.plural).GroupResource()
	store := &genericregistry.Store{
		NewFunc:                   b.newObj,
		NewListFunc:               b.newList,
		DefaultQualifiedResource:  gr,
		SingularQualifiedResource: schema.GroupResource{Group: b.gv.Group, Resource: strings.ToLower(b.kind)},
		CreateStrategy:            st,
		UpdateStrategy:            st,
		DeleteStrategy:            st,
		ResetFieldsStrategy:       st,
		TableConvertor:            rest.NewDefaultTableConvertor(gr),
	}
	attrs := storage.DefaultClusterScopedAttr
	if b.namespaced {
		attrs = storage.DefaultNamespaceScopedAttr
	}
	opts := &generic.StoreOptions{RESTOptions: optsGetter, AttrFunc: func(obj runtime.Object) (labels.Set, fields.Set, error) {
		l, f, err := attrs(obj)
		if err == nil && b.fields != nil {
			for k, v := range b.fields(obj) {
				f[k] = v
			}
		}
		return l, f, err
	}}
	if err := store.CompleteWithOptions(opts); err != nil {
		return nil, nil, err
	}
	if !b.status {
		return store, nil, nil
	}
	statusStore := *store
	statusSt := st
	statusSt.statusOnly = true
	statusStore.UpdateStrategy = statusSt
	statusStore.ResetFieldsStrategy = statusSt
	return store, &statusREST{store: &statusStore}, nil
}

// namedStore adds the short names kubectl resolves (`kubectl get svc`) through discovery.
type namedStore struct {
	*genericregistry.Store
	shortNames []string
}

func (n *namedStore) ShortNames() []string { return n.shortNames }

type statusREST struct{ store *genericregistry.Store }

func (r *statusREST) New() runtime.Object { return r.store.New() }
func (r *statusREST) Destroy()            {}
func (r *statusREST) Get(ctx context.Context, name string, o *metav1.GetOptions) (runtime.Object, error) {
	return r.store.Get(ctx, name, o)
}
func (r *statusREST) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, o *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// A status write never creates the object, whatever the caller asks.
	return r.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, o)
}
func (r *statusREST) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return r.store.GetResetFields()
}

// strategy is the one create/update/delete strategy shared by all built-in types: metadata validation,
// status handling by reflection on the Status field, and the hand-written defaults.
type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	b          builtin
	statusOnly bool
}

func (s strategy) NamespaceScoped() bool          { return s.b.namespaced }
func (s strategy) AllowCreateOnUpdate() bool      { return false }
func (s strategy) AllowUnconditionalUpdate() bool { return true }
func (s strategy) Canonicalize(runtime.Object)    {}
func (s strategy) WarningsOnCreate(context.Context, runtime.Object) []string {
	return nil
}
func (s strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

func (s strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if s.b.status {
		statusField(obj).Set(reflect.Zero(statusField(obj).Type()))
	}
	if s.b.generation {
		obj.(metav1.Object).SetGeneration(1)
	}
	if s.b.defaults != nil {
		s.b.defaults(obj, nil)
	}
}

func (s strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if s.statusOnly {
		// Like the CRD status strategy: everything but status (and the managedFields the request
		// just computed) comes from the stored object.
		status := statusField(obj).Interface()
		managed := obj.(metav1.Object).GetManagedFields()
		reflect.ValueOf(obj).Elem().Set(reflect.ValueOf(old.DeepCopyObject()).Elem())
		statusField(obj).Set(reflect.ValueOf(status))
		obj.(metav1.Object).SetManagedFields(managed)
		return
	}
	if s.b.status {
		statusField(obj).Set(statusField(old))
	}
	if s.b.defaults != nil {
		s.b.defaults(obj, old)
	}
	if s.b.generation {
		gen := old.(metav1.Object).GetGeneration()
		if !equalIgnoringMetaAndStatus(obj, old) {
			gen++
		}
		obj.(metav1.Object).SetGeneration(gen)
	}
}

func (s strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return apivalidation.ValidateObjectMetaAccessor(obj.(metav1.Object), s.b.namespaced, s.b.nameFn, field.NewPath("metadata"))
}

func (s strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	errs := apivalidation.ValidateObjectMetaAccessor(obj.(metav1.Object), s.b.namespaced, s.b.nameFn, field.NewPath("metadata"))
	return append(errs, apivalidation.ValidateObjectMetaAccessorUpdate(obj.(metav1.Object), old.(metav1.Object), field.NewPath("metadata"))...)
}

// GetResetFields tells server-side apply which fields an endpoint drops, so managers do not claim them.
func (s strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if !s.b.status {
		return nil
	}
	path := "status"
	if s.statusOnly {
		path = "spec"
	}
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(s.b.gv.String()): fieldpath.NewSet(fieldpath.MakePathOrDie(path)),
	}
}

func statusField(obj runtime.Object) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName("Status")
}

func equalIgnoringMetaAndStatus(a, b runtime.Object) bool {
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := 0; i < av.NumField(); i++ {
		switch av.Type().Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !reflect.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			return false
		}
	}
	return true
}

func podFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	return fields.Set{"spec.nodeName": p.Spec.NodeName, "status.phase": string(p.Status.Phase)}
}

func secretFields(obj runtime.Object) fields.Set {
	return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
}

func eventFields(obj runtime.Object) fields.Set {
	e := obj.(*corev1.Event)
	return fields.Set{
		"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.namespace": e.InvolvedObject.Namespace,
		"involvedObject.name": e.InvolvedObject.Name, "involvedObject.uid": string(e.InvolvedObject.UID),
		"involvedObject.apiVersion": e.InvolvedObject.APIVersion, "involvedObject.fieldPath": e.InvolvedObject.FieldPath,
		"reason": e.Reason, "type": e.Type, "source": e.Source.Component, "reportingComponent": e.ReportingController,
	}
}
