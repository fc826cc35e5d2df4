/**
 * kube-proxy, for Services that are not a Cluster's own: the test API server has no kube-proxy and
 * no ClusterIPs, so each such Service gets a loopback listener that stands for `<service>.<ns>.svc:5432`.
 * Every new connection follows the Service's selector as it is at that moment to a Ready Pod in the
 * Service's namespace whose labels match it (EndpointSlice semantics: Ready, not terminating), and
 * is piped to that Pod's PostgreSQL loopback port. Like kube-proxy:
 * - a selector change moves new connections only; open ones stay where they are (BEHAVIOUR.md §10.5);
 * - with no ready endpoint the connection is refused (closed at once; kube-proxy rejects with ICMP).
 * A Cluster's own `-rw` Service needs none of this: its loopback port is the primary's own port.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { LABEL } from './constants.js';
import type { SimContext } from './context.js';
import { controllerOf, type Obj } from './kube.js';
import type { Kubelet } from './kubelet.js';

export interface ForwardedConnection {
  service: string;
  pod: string | undefined;
  at: string;
}

interface Listener {
  server: Server;
  port: number;
  sockets: Set<Socket>;
}

export class ServiceForwarder {
  readonly #ctx: SimContext;
  readonly #kubelet: Kubelet;
  readonly #pods: () => Obj[];
  readonly #services = new Map<string, Obj>();
  readonly #listeners = new Map<string, Promise<Listener>>();
  readonly #history: ForwardedConnection[] = [];
  #stopped = false;

  constructor(ctx: SimContext, kubelet: Kubelet, pods: () => Obj[]) {
    this.#ctx = ctx;
    this.#kubelet = kubelet;
    this.#pods = pods;
  }

  /** From the Services informer. A Cluster's own Services are skipped (they have their loopback port already). */
  onService(type: 'ADDED' | 'MODIFIED' | 'DELETED', service: Obj): void {
    const key = `${service.metadata?.namespace}/${service.metadata?.name}`;
    if (controllerOf(service)?.kind === 'Cluster') return;
    if (type === 'DELETED') this.#services.delete(key);
    else this.#services.set(key, service);
  }

  /** The loopback port standing for `<service>.<namespace>.svc:5432`; the listener exists from the first call on. */
  port(namespace: string, service: string): Promise<number> {
    return this.#listener(namespace, service).then((l) => l.port);
  }

  /** Where each connection went, oldest first (pod undefined: refused). */
  connections(): readonly ForwardedConnection[] {
    return [...this.#history];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    const listeners = await Promise.allSettled([...this.#listeners.values()]);
    await Promise.all(
      listeners.map((r) => {
        if (r.status !== 'fulfilled') return undefined;
        for (const socket of r.value.sockets) socket.destroy();
        return new Promise<void>((resolve) => r.value.server.close(() => resolve()));
      }),
    );
  }

  /** The Ready, not terminating Pod the Service's selector picks now, and its loopback port. */
  endpoint(namespace: string, service: string): { pod: string; port: number } | undefined {
    const selector = this.#services.get(`${namespace}/${service}`)?.spec?.selector as Record<string, string> | undefined;
    if (!selector || Object.keys(selector).length === 0) return undefined;
    const candidates = this.#pods()
      .filter((pod) => pod.metadata?.namespace === namespace && !pod.metadata?.deletionTimestamp)
      .filter((pod) => Object.entries(selector).every(([k, v]) => pod.metadata?.labels?.[k] === v))
      .filter((pod) => (pod.status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True'))
      .sort((a, b) => String(a.metadata.name).localeCompare(String(b.metadata.name)));
    for (const pod of candidates) {
      const cluster = String(pod.metadata.labels?.[LABEL.cluster] ?? '');
      const instance = this.#kubelet.instances(namespace, cluster).find((i) => i.pod === pod.metadata.name);
      if (instance?.ready && instance.port !== undefined) return { pod: String(pod.metadata.name), port: instance.port };
    }
    return undefined;
  }

  #listener(namespace: string, service: string): Promise<Listener> {
    const key = `${namespace}/${service}`;
    let listener = this.#listeners.get(key);
    if (!listener) {
      listener = this.#listen(namespace, service);
      this.#listeners.set(key, listener);
    }
    return listener;
  }

  #listen(namespace: string, service: string): Promise<Listener> {
    const sockets = new Set<Socket>();
    const server = createServer((client) => {
      const target = this.#stopped ? undefined : this.endpoint(namespace, service);
      this.#history.push({ service: `${namespace}/${service}`, pod: target?.pod, at: new Date().toISOString() });
      if (this.#history.length > 10_000) this.#history.shift();
      if (!target) {
        client.destroy();
        return;
      }
      const upstream = tcpConnect({ host: '127.0.0.1', port: target.port });
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.setNoDelay(true);
      }
      // Either side ending or failing ends both, as a proxied TCP connection does.
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        const address = server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        this.#ctx.log('info', 'service forwarder listening', { namespace, service, port });
        resolve({ server, port, sockets });
      });
    });
  }
}
