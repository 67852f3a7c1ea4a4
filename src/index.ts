/**
 * avrpc: framed, multiplexed Avro RPC over raw TCP. The public API; everything else is internal.
 */
export { loadProtocol, parseProtocol, Protocol } from './codec/protocol.js';
export { createServer } from './server/server.js';
export { serveCluster, shareClusterMetrics, isClusterWorker } from './server/cluster.js';
export { createClient } from './client/client.js';
export { describeServer } from './client/describe.js';
export { checkHealth } from './client/health-check.js';
export { RpcError, fromNodeError } from './errors/rpc-error.js';
export { Code, codeName } from './errors/code.js';
export { CallContext } from './server/call-context.js';
export { balancers, leastConnections, roundRobin, weighted, powerOfTwoChoices } from './client/balancer.js';
export { createPrometheusObserver, DEFAULT_LATENCY_BUCKETS } from './observability/prometheus.js';
export { combineObservers } from './observability/observer.js';
export { createHmacAuth } from './security/hmac-token.js';
export { aclAuthorizer } from './security/auth.js';
export { createStaticRegistry, createEtcdRegistry, createDnsRegistry, versionSatisfies } from './discovery/index.js';

export type { MessageDef, ProtocolOptions, StreamKind } from './codec/protocol.js';
export type { LongsMode } from './codec/longs.js';
export type { Server, ListenOptions, ListenResult, CloseOptions, RegisterOptions } from './server/server.js';
export type { HttpOptions } from './server/http/http-options.js';
export type { CorsOptions } from './server/http/http-cors.js';
export type { ServerOptions, Handler, GrpcOptions } from './server/server-options.js';
export type { WorkerOptions } from './server/offload/worker-options.js';
export type { PeerInfo } from './server/call-context.js';
export type { Client, UntypedClient, ResponseStream, CallKind } from './client/client.js';
export type { TypedClient } from './client/typed-client.js';
export type { HandlerOf, HandlersOf } from './server/typed-handlers.js';
export type {
  MessageSpec,
  MessageKind,
  ApiShape,
  MessagesOf,
  RequestOf,
  ResponseOf,
  CallResultOf,
  ErrorsOf,
  DeclaredError,
  CallError,
  Elements,
} from './codec/api-types.js';
export type { DescribeOptions } from './client/describe.js';
export type { HealthCheckOptions, HealthCheckResult } from './client/health-check.js';
export type { HealthStatusName } from './framing/health.js';
export type { ReadinessState } from './server/readiness.js';
export type { EndpointStats } from './client/pool.js';
export type { ClientOptions, CallOptions, Endpoint, DiscoveryOptions } from './client/client-options.js';
export type { TransportOptions } from './connection/transport-options.js';
export type { Balancer, BalancerName, BalancerOptions, ConnectionView } from './client/balancer.js';
export type {
  Registry,
  Registration,
  ServiceInstance,
  InstanceInput,
  ResolveOptions,
  WatchOptions,
  EtcdRegistryOptions,
  DnsRegistryOptions,
  RegistryErrorListener,
} from './discovery/index.js';
export type { RpcErrorOptions } from './errors/rpc-error.js';
export type { RpcObserver, Logger, PoolStat } from './observability/observer.js';
export type { CallInfo } from './observability/call-info.js';
export type { TracingOptions } from './observability/tracing.js';
export type { HedgeDelay } from './client/hedging.js';
export type {
  ClusterOptions,
  ClusterHandle,
  ClusterPrimary,
  ClusterWorker,
  ClusterWorkerInfo,
  ClusterWorkerState,
  ClusterServer,
} from './server/cluster.js';
export type { PrometheusObserver, PrometheusObserverOptions } from './observability/prometheus.js';
export type { ServerInterceptor } from './server/interceptor.js';
export type { ClientInterceptor, OutgoingCall } from './client/interceptor.js';
export type { HmacAuth, HmacAuthOptions, HmacPrincipal } from './security/hmac-token.js';
export type { Acl, AclEntry, Authenticator, Authorizer, HandshakeInfo, PeerCertificateInfo, Principal } from './security/auth.js';
export type { ClientTlsOptions, ServerTlsOptions } from './security/tls.js';
export type { CodeName } from './errors/code.js';
export type { Metadata } from './framing/bodies.js';
