/**
 * The avrpc health check on the wire (SPEC.md section 14): a HELLO whose meta has `avrpc.health` asks
 * whether the server takes calls. The server answers with one WELCOME whose meta `avrpc.health` is one
 * byte, the status, and closes; no protocol is exchanged, so any client can ask without the service's.
 */

/** HELLO meta key asking for health (value: UTF-8 service name, empty for the whole server) and WELCOME key answering it. */
export const HEALTH_META_KEY = 'avrpc.health';

/** The statuses, numbered as `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export const HealthStatus = {
  SERVING: 1,
  NOT_SERVING: 2,
  SERVICE_UNKNOWN: 3,
} as const;

/** A status name of {@link HealthStatus}. */
export type HealthStatusName = keyof typeof HealthStatus;

/** The WELCOME meta value of a status. */
export function encodeHealth(status: HealthStatusName): Buffer {
  return Buffer.from([HealthStatus[status]]);
}

/**
 * Reads a WELCOME's `avrpc.health` value. Anything but one known byte (a status added later) reads as
 * NOT_SERVING, never as SERVING.
 */
export function decodeHealth(value: Buffer): HealthStatusName {
  if (value.length === 1 && value[0] === HealthStatus.SERVING) return 'SERVING';
  if (value.length === 1 && value[0] === HealthStatus.SERVICE_UNKNOWN) return 'SERVICE_UNKNOWN';
  return 'NOT_SERVING';
}
