/** db-refresher's metadata keys on the Kubernetes objects it writes (Clusters, history ConfigMaps). */
export const LABELS = {
  managedBy: 'app.kubernetes.io/managed-by',
  component: 'app.kubernetes.io/component',
  job: 'db-refresher.io/job',
} as const;

/** The value of LABELS.managedBy on everything db-refresher creates. */
export const MANAGED_BY_VALUE = 'db-refresher';
