package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/conversion"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
)

// podLogREST serves pods/log. There is no kubelet, so the log of pod <ns>/<name> is the file
// <dir>/<ns>/<name>.log (or <dir>/<ns>/<name>/<container>.log when ?container= names one and that file
// exists), written by whoever simulates the workload. A missing file answers like a container that has
// not started. sinceSeconds, sinceTime, timestamps and previous are accepted and ignored.
type podLogREST struct {
	pods *genericregistry.Store
	dir  string
}

const followPollInterval = 200 * time.Millisecond

func (r *podLogREST) New() runtime.Object { return &corev1.Pod{} }
func (r *podLogREST) Destroy()            {}

func (r *podLogREST) ProducesMIMETypes(string) []string { return []string{"text/plain"} }
func (r *podLogREST) ProducesObject(string) interface{} { return "" }

func (r *podLogREST) NewGetOptions() (runtime.Object, bool, string) {
	return &corev1.PodLogOptions{}, false, ""
}

func (r *podLogREST) Get(ctx context.Context, name string, opts runtime.Object) (runtime.Object, error) {
	o, ok := opts.(*corev1.PodLogOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", opts)
	}
	obj, err := r.pods.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	pod := obj.(*corev1.Pod)
	container, err := pickContainer(pod, o.Container)
	if err != nil {
		return nil, err
	}
	if r.dir == "" {
		return nil, apierrors.NewBadRequest("pod logs are not served: the server was started without --pod-log-dir")
	}
	ns := genericapirequest.NamespaceValue(ctx)
	path := filepath.Join(r.dir, ns, name+".log")
	if o.Container != "" {
		if p := filepath.Join(r.dir, ns, name, o.Container+".log"); fileExists(p) {
			path = p
		}
	}
	if !fileExists(path) {
		// kubelet's answer for a container with no log yet.
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, name))
	}
	return &logStreamer{path: path, opts: *o, done: func() bool { return r.podFinished(ctx, name) }}, nil
}

// podFinished ends a follow the way kubelet does: when the pod is gone or its containers have exited.
func (r *podLogREST) podFinished(ctx context.Context, name string) bool {
	obj, err := r.pods.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return true
	}
	phase := obj.(*corev1.Pod).Status.Phase
	return phase == corev1.PodSucceeded || phase == corev1.PodFailed
}

func pickContainer(pod *corev1.Pod, requested string) (string, error) {
	var all []string
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		all = append(all, c.Name)
	}
	if requested == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		if len(pod.Spec.Containers) == 0 {
			return "", apierrors.NewBadRequest(fmt.Sprintf("pod %s has no containers", pod.Name))
		}
		return "", apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, all))
	}
	for _, n := range all {
		if n == requested {
			return n, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", requested, pod.Name))
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// logStreamer is the rest.ResourceStreamer the REST handler copies to the response.
type logStreamer struct {
	path string
	opts corev1.PodLogOptions
	done func() bool
}

func (s *logStreamer) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }
func (s *logStreamer) DeepCopyObject() runtime.Object {
	c := *s
	return &c
}

func (s *logStreamer) InputStream(ctx context.Context, _, _ string) (io.ReadCloser, bool, string, error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return nil, false, "", err
	}
	offset := int64(len(data))
	if s.opts.TailLines != nil {
		data = lastLines(data, *s.opts.TailLines)
	}
	var limit int64 = -1
	if s.opts.LimitBytes != nil {
		limit = *s.opts.LimitBytes
	}
	if !s.opts.Follow {
		return io.NopCloser(bytes.NewReader(truncate(data, limit))), false, "text/plain", nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, false, "", err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, false, "", err
	}
	r := io.MultiReader(bytes.NewReader(data), &followReader{ctx: ctx, f: f, done: s.done})
	if limit >= 0 {
		r = io.LimitReader(r, limit)
	}
	return &readCloser{Reader: r, close: f.Close}, true, "text/plain", nil
}

// followReader reads what is appended to the file until the client goes away or the pod finishes.
type followReader struct {
	ctx  context.Context
	f    *os.File
	done func() bool
}

func (r *followReader) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || (err != nil && !errors.Is(err, io.EOF)) {
			return n, err
		}
		if r.done() {
			// One last read: the writer may have appended between the EOF and the check.
			if n, _ := r.f.Read(p); n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		select {
		case <-r.ctx.Done():
			return 0, io.EOF
		case <-time.After(followPollInterval):
		}
	}
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

func lastLines(data []byte, n int64) []byte {
	if n < 0 {
		return data
	}
	if n == 0 {
		return nil
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end-- // a trailing newline ends the last line; it does not start another
	}
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			n--
			if n == 0 {
				return data[i+1:]
			}
		}
	}
	return data
}

func truncate(data []byte, limit int64) []byte {
	if limit >= 0 && int64(len(data)) > limit {
		return data[:limit]
	}
	return data
}

// registerPodLogOptions teaches the scheme to decode ?container=&tailLines=... into PodLogOptions;
// kube-apiserver's generated conversion for this lives in k8s.io/kubernetes, which is not packaged.
func registerPodLogOptions(scheme *runtime.Scheme) error {
	return scheme.AddConversionFunc((*url.Values)(nil), (*corev1.PodLogOptions)(nil), func(a, b interface{}, _ conversion.Scope) error {
		q, o := *(a.(*url.Values)), b.(*corev1.PodLogOptions)
		var err error
		boolParam := func(key string) bool {
			v, perr := strconv.ParseBool(q.Get(key))
			if perr != nil && q.Get(key) != "" && err == nil {
				err = apierrors.NewBadRequest(fmt.Sprintf("invalid %s %q", key, q.Get(key)))
			}
			return v
		}
		intParam := func(key string) *int64 {
			if q.Get(key) == "" {
				return nil
			}
			v, perr := strconv.ParseInt(q.Get(key), 10, 64)
			if perr != nil || v < 0 {
				if err == nil {
					err = apierrors.NewBadRequest(fmt.Sprintf("invalid %s %q: must be a non-negative integer", key, q.Get(key)))
				}
				return nil
			}
			return &v
		}
		o.Container = q.Get("container")
		o.Follow = boolParam("follow")
		o.Previous = boolParam("previous")
		o.Timestamps = boolParam("timestamps")
		o.InsecureSkipTLSVerifyBackend = boolParam("insecureSkipTLSVerifyBackend")
		o.TailLines = intParam("tailLines")
		o.LimitBytes = intParam("limitBytes")
		o.SinceSeconds = intParam("sinceSeconds")
		return err
	})
}
