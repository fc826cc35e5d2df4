package main

import (
	"fmt"
	"strings"
	"sync/atomic"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Hand-written subset of kube-apiserver's defaulting (k8s.io/kubernetes/pkg/apis/*/v1/defaults.go and
// the registry strategies), which Debian does not package. Only fields a client is likely to read back
// are covered; everything else stays as written.

func defaultNamespace(obj, old runtime.Object) {
	ns := obj.(*corev1.Namespace)
	if old == nil {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

func defaultSecret(obj, _ runtime.Object) {
	s := obj.(*corev1.Secret)
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	// stringData is write-only: merged into data (winning over it) and never stored.
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	}
}

// nextClusterIP hands out addresses from 10.96.0.0/16 in order; 10.96.0.1 is left for a
// "kubernetes" Service as in a real cluster. Addresses are not reused and not persisted: unique for
// the life of one test server, which is the life of its etcd.
var nextClusterIP atomic.Uint32

func allocateClusterIP() string {
	n := nextClusterIP.Add(1) + 9
	return fmt.Sprintf("10.96.%d.%d", (n>>8)&0xff, n&0xff)
}

func defaultService(obj, old runtime.Object) {
	svc := obj.(*corev1.Service)
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if svc.Spec.SessionAffinity == "" {
		svc.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	if svc.Spec.InternalTrafficPolicy == nil {
		policy := corev1.ServiceInternalTrafficPolicyCluster
		svc.Spec.InternalTrafficPolicy = &policy
	}
	if svc.Spec.ClusterIP == "" {
		// clusterIP is immutable: an update that leaves it out keeps the allocated one, as kube-apiserver does.
		if o, ok := old.(*corev1.Service); ok && o.Spec.ClusterIP != "" {
			svc.Spec.ClusterIP = o.Spec.ClusterIP
		} else {
			svc.Spec.ClusterIP = allocateClusterIP()
		}
	}
	if len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		if len(svc.Spec.IPFamilies) == 0 {
			svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if svc.Spec.IPFamilyPolicy == nil {
			single := corev1.IPFamilyPolicySingleStack
			svc.Spec.IPFamilyPolicy = &single
		}
	}
}

func defaultPod(obj, old runtime.Object) {
	pod := obj.(*corev1.Pod)
	if old == nil {
		pod.Status.Phase = corev1.PodPending
	}
	defaultPodSpec(&pod.Spec)
}

func defaultPodSpec(spec *corev1.PodSpec) {
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	if spec.TerminationGracePeriodSeconds == nil {
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		spec.TerminationGracePeriodSeconds = &grace
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			defaultContainer(&list[i])
		}
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		// kube's rule: an untagged or :latest image is always pulled.
		image := c.Image
		if i := strings.LastIndex(image, "@"); i >= 0 {
			image = image[:i]
		}
		tag := ""
		if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i:], "/") {
			tag = image[i+1:]
		}
		if tag == "" || tag == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
}

func defaultPVC(obj, _ runtime.Object) {
	pvc := obj.(*corev1.PersistentVolumeClaim)
	if pvc.Spec.VolumeMode == nil {
		mode := corev1.PersistentVolumeFilesystem
		pvc.Spec.VolumeMode = &mode
	}
}

func defaultJob(obj, old runtime.Object) {
	job := obj.(*batchv1.Job)
	spec := &job.Spec
	if spec.Completions == nil && spec.Parallelism == nil {
		one := int32(1)
		spec.Completions, spec.Parallelism = &one, &one
	}
	if spec.Parallelism == nil {
		one := int32(1)
		spec.Parallelism = &one
	}
	if spec.BackoffLimit == nil {
		six := int32(6)
		spec.BackoffLimit = &six
	}
	if spec.CompletionMode == nil {
		mode := batchv1.NonIndexedCompletion
		spec.CompletionMode = &mode
	}
	if spec.Suspend == nil {
		no := false
		spec.Suspend = &no
	}
	if spec.PodReplacementPolicy == nil {
		policy := batchv1.TerminatingOrFailed
		spec.PodReplacementPolicy = &policy
	}
	if spec.Template.Spec.RestartPolicy == "" {
		spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	defaultPodSpec(&spec.Template.Spec)
	// The job controller finds its pods by these labels; kube-apiserver generates them on create from
	// the Job's uid unless the user chose manualSelector.
	if old == nil && (spec.ManualSelector == nil || !*spec.ManualSelector) && job.UID != "" {
		generated := map[string]string{
			batchv1.ControllerUidLabel: string(job.UID), batchv1.JobNameLabel: job.Name,
			"controller-uid": string(job.UID), "job-name": job.Name,
		}
		if spec.Template.Labels == nil {
			spec.Template.Labels = map[string]string{}
		}
		for k, v := range generated {
			spec.Template.Labels[k] = v
		}
		spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: string(job.UID)}}
	}
}
